"""Without Flower installed, the federated commands name the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def test_flwr_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from heartline.cli.main import app
    from heartline.federated import FlowerMissingError, require_flwr
    from heartline.federated.deployment import Deployment

    for name in [m for m in sys.modules if m == "flwr" or m.startswith("flwr.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flwr", None)  # hides the installed module
    with pytest.raises(FlowerMissingError, match=r"heartline\[federated\]"):
        require_flwr()
    with pytest.raises(FlowerMissingError, match=r"heartline\[federated\]"):
        Deployment(tmp_path)
    res = CliRunner().invoke(
        app,
        [
            "federated",
            "run",
            "--task",
            "beats",
            "--hospitals",
            "3",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 1
    assert "heartline[federated]" in res.output
