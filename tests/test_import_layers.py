"""Import layering: the import-linter contracts hold, and the run-time side never loads torch.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``); ``lint-imports`` checks them
on the whole package (imports inside functions included). The second test runs the service app
and a real stream processor with the shipped ONNX model in a fresh interpreter (so that the
imports of other tests cannot hide one) and checks that neither torch nor
``heartline.models``/``heartline.training`` was ever imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is missing: install heartline[dev] (import-linter)"
    out = subprocess.run(
        [exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


_RUNTIME_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import numpy as np
    import wfdb

    import heartline.service.app  # noqa: F401  (the FastAPI app module)
    from heartline.edge.shipped import shipped_model_path
    from heartline.ingestion.broker import BrokerAddress
    from heartline.ingestion.payloads import Frame
    from heartline.ingestion.processor import StreamProcessor, _Message
    from heartline.ingestion.topics import frames_topic
    from heartline.storage import make_engine, make_session_factory, session_scope
    from heartline.storage import upgrade_database
    from heartline.storage.repository import register_device, register_patient
    from heartline.storage.tables import Beat
    from sqlalchemy import func, select

    data_dir, tmp = Path(sys.argv[1]), Path(sys.argv[2])
    url = f"sqlite:///{tmp / 'rt.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        register_patient(s, patient_id="p-rt-0001")
        register_device(s, device_id="rt-0001", patient_id="p-rt-0001")
    # an address nothing listens on: the processor is never started, only fed (as the stream
    # profile feeds it)
    proc = StreamProcessor(
        address=BrokerAddress("127.0.0.1", 9),
        database_url=url,
        model=str(shipped_model_path()),
        partitions=[0],
        n_partitions=1,
        client_id="rt-no-torch",
    )
    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "100"), sampto=360 * 20, physical=False)
    counts = rec.d_signal.astype(np.int64)
    topic = frames_topic("rt-0001", partitions=1)
    for k in range(20):
        frame = Frame.from_counts(
            counts[360 * k : 360 * (k + 1)],
            device_id="rt-0001",
            seq=k,
            start_time_s=1.7e9 + k,
            fs_hz=360.0,
            lead_names=("MLII", "V5"),
            adc_bits=11,
            adc_gain=(200.0, 200.0),
            adc_baseline=(1024, 1024),
        )
        proc._handle([_Message(topic, frame.to_json(), 0, 0, time.monotonic())])
    with engine.connect() as c:
        n_beats = c.execute(select(func.count()).select_from(Beat)).scalar_one()
    engine.dispose()
    assert n_beats > 10, f"the processor classified {n_beats} beats of 20 s of record 100"
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.",
        "heartline.models", "heartline.training")))
    assert "torch" not in sys.modules, loaded
    assert not loaded, loaded
    print(f"ok: {n_beats} beats classified, torch not loaded")
    """
)


def test_service_and_stream_processor_run_without_torch(tmp_path, data_dir) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RUNTIME_SCRIPT, str(data_dir), str(tmp_path)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "torch not loaded" in out.stdout


@pytest.mark.parametrize(
    "module",
    [
        "heartline.service.app",
        "heartline.ingestion.processor",
        "heartline.edge.runtime",
        "heartline.edge.multimodal",
        "heartline.edge.multimodal_explain",
    ],
)
def test_run_time_modules_import_without_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch loaded'"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
