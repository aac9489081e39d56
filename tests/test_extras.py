"""Packaging by role: a command whose extra is not installed says which extra to install.

The core install (``pip install heartline``) has no torch and no service stack; ``heartline
train`` there must fail with one line naming ``heartline[train]``, ``heartline serve`` one naming
``heartline[service]``. The missing packages are simulated in a fresh interpreter by an import
hook that refuses them (the real core-only install is measured in docs/results/packaging.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_BLOCKING_MAIN = textwrap.dedent(
    """
    import sys
    blocked = set(sys.argv[1].split(","))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    sys.argv = ["heartline", *sys.argv[2:]]
    from heartline.cli.main import main
    main()
    """
)


def _run(blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="400")
    return subprocess.run(
        [sys.executable, "-c", _BLOCKING_MAIN, blocked, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (
            "torch",
            ("train", "--config", "configs/shipped/hybrid_best_tpl.toml", "--out", "{tmp}"),
            "train",
        ),
        ("torch", ("ship", "{tmp}"), "train"),
        ("fastapi,uvicorn,sqlalchemy", ("serve", "--state-dir", "{tmp}"), "service"),
    ],
)
def test_missing_extra_is_named(blocked: str, args: tuple[str, ...], extra: str, tmp_path) -> None:
    out = _run(blocked, *(a.format(tmp=tmp_path) for a in args))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"heartline[{extra}]" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_classify_needs_no_extra(tmp_path, data_dir) -> None:
    blocked = "torch,onnx,optuna,fastapi,sqlalchemy,paho,flwr"
    csv = tmp_path / "beats.csv"
    out = _run(blocked, "classify", str(data_dir / "mitdb" / "100"), "--out", str(csv))
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(csv.read_text().splitlines()) > 2000  # record 100: 2,273 beats


def test_diagnose_needs_no_extra_and_names_it_for_fhir(tmp_path, data_dir) -> None:
    """The core install diagnoses a 12-lead record; only --fhir needs heartline[service]."""
    record = data_dir / "ptbxl" / "records100" / "00000" / "00001_lr"
    if not record.with_suffix(".hea").is_file():
        pytest.skip(f"PTB-XL record {record} not found")
    blocked = "torch,onnx,optuna,fastapi,sqlalchemy,paho,flwr,fhir"
    out = _run(blocked, "diagnose", str(record), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"NORM"' in out.stdout
    out = _run(blocked, "diagnose", str(record), "--fhir", str(tmp_path / "dx.json"))
    assert out.returncode == 1 and "heartline[service]" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
