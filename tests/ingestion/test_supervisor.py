"""Stream-processor workers as supervised processes: crash -> restart -> nothing lost;
``heartline worker`` end to end; no orphan after stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from heartline.ingestion.live import LiveSystem
from heartline.settings import load_settings
from heartline.storage import make_engine
from heartline.storage.tables import FrameRecord


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _stored(url: str, device_ids: list[str]) -> dict[str, list[int]]:
    engine = make_engine(url)
    with engine.connect() as c:
        out = {
            d: sorted(
                c.execute(select(FrameRecord.seq).where(FrameRecord.device_id == d)).scalars()
            )
            for d in device_ids
        }
    engine.dispose()
    return out


def test_worker_crash_is_restarted_and_no_frame_is_lost(tmp_path, tiny_model_path, data_dir):
    settings = load_settings(state_dir=tmp_path / "state", mqtt_partitions=2)
    ids = ["sim-0001", "sim-0002", "sim-0003"]
    with LiveSystem(
        settings,
        model=tiny_model_path,
        workers=2,
        patients=3,
        realtime=True,
        duration_s=14,
        data_dir=data_dir,
        processes=True,
    ) as live:
        sup = live.supervisor
        assert sup is not None and not live.processors
        pids = sup.pids()
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        time.sleep(5)
        killed = [sup.kill(0), sup.kill(1)]  # both workers crash mid-stream
        deadline = time.monotonic() + 60
        while sup.restarts < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sup.restarts == 2, sup.exits
        assert {e["status"] for e in sup.exits} == {-signal.SIGKILL}
        new = sup.pids()
        assert set(new).isdisjoint(killed)
        assert live.sim_done.wait(60)
        assert live.wait_drained(90), live.status()
        stored = _stored(settings.resolved_database_url(), ids)
        assert stored == {d: list(range(14)) for d in ids}  # every frame, once
        st = live.status()
        assert {p.device_id for p in st.patients} == set(ids)
    assert not any(_alive(p) for p in new + killed)  # no orphan once the system stops


def test_heartline_worker_command_end_to_end(tmp_path, tiny_model_path, data_dir):
    """An operator's `heartline worker` (a separate process) serves the partitions of a system
    that runs no processor of its own."""
    from heartline.ingestion.broker import MosquittoSupervisor
    from heartline.ingestion.worker import read_rss_bytes

    settings = load_settings(state_dir=tmp_path / "state", mqtt_partitions=2)
    db = settings.resolved_database_url()
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        live_settings = load_settings(
            state_dir=tmp_path / "state", mqtt_partitions=2, broker_url=broker.address.url
        )
        from heartline.storage import upgrade_database

        upgrade_database(db)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        status = tmp_path / "w.json"
        cmd = [
            sys.executable,
            "-m",
            "heartline.cli.worker",
            "--broker-url",
            broker.address.url,
            "--database-url",
            db,
            "--partitions",
            "0,1",
            "--n-partitions",
            "2",
            "--model",
            str(tiny_model_path),
            "--status-file",
            str(status),
        ]
        w = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not status.exists() and time.monotonic() < deadline:
                assert w.poll() is None, "heartline worker exited while starting"
                time.sleep(0.2)
            assert status.exists()
            assert read_rss_bytes(w.pid) > 0
            # devices only: the LiveSystem's own processors are none (workers via the command)
            with LiveSystem(
                live_settings,
                model=tiny_model_path,
                workers=0,  # the external worker does the processing
                patients=2,
                realtime=False,
                duration_s=20,
                data_dir=data_dir,
                device_prefix="wk",
            ) as live:
                assert live.sim_done.wait(60)
                assert live.wait_drained(60)
            stored = _stored(db, ["wk-0001", "wk-0002"])
            assert stored == {d: list(range(20)) for d in stored}
        finally:
            w.send_signal(signal.SIGTERM)
            assert w.wait(30) == 0  # a clean stop on SIGTERM
