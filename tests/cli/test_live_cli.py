"""``heartline live``: the whole system with simulated patients, stopped after --duration."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.storage import make_engine
from heartline.storage.tables import Beat, FrameRecord

runner = CliRunner()


def test_live_runs_and_stores(tmp_path, tiny_model_path, data_dir) -> None:
    state = tmp_path / "state"
    res = runner.invoke(
        app,
        [
            "live",
            "--patients",
            "2",
            "--workers",
            "1",
            "--duration",
            "6",
            "--model",
            str(tiny_model_path),
            "--state-dir",
            str(state),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Heartline live" in res.output and "sim-0001" in res.output
    engine = make_engine(f"sqlite:///{state / 'heartline.db'}")
    with engine.connect() as c:
        frames = c.execute(select(func.count()).select_from(FrameRecord)).scalar()
        beats = c.execute(select(func.count()).select_from(Beat)).scalar()
    engine.dispose()
    assert frames >= 8 and beats >= 2


def test_live_refuses_a_missing_model(tmp_path) -> None:
    res = runner.invoke(
        app, ["live", "--model", str(tmp_path / "none.onnx"), "--state-dir", str(tmp_path)]
    )
    assert res.exit_code != 0 and "no ONNX model" in res.output
