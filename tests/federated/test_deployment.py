"""A real Flower deployment (SuperLink + SuperNodes as separate processes), never mocked.

Every test checks that no process it started (nor any of their descendants) is left running.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr", reason="the federated extra (flwr) is not installed")

from heartline.data.splits import DS2
from heartline.federated.deployment import (
    Deployment,
    DeploymentError,
    FederatedRunConfig,
    find_free_port,
    pid_alive,
    run_federation,
)
from heartline.federated.partition import Hospital, Manifest, ManifestError, save_manifest


def _tiny_manifest(path: Path, records: tuple[tuple[str, ...], ...]) -> Path:
    hospitals = tuple(Hospital(i, f"hospital-{i}", r) for i, r in enumerate(records))
    return save_manifest(Manifest("beats", "mitdb", 0, None, hospitals, DS2), path)


def _assert_all_stopped(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    alive = [p for p in pids if pid_alive(p)]
    assert not alive, f"processes left running: {alive}"


def _cfg(manifest: Path, **kw) -> FederatedRunConfig:
    base = dict(
        task="beats",
        manifest=manifest,
        num_rounds=1,
        keep_normal=0.02,
        round_timeout_s=120.0,
        connect_timeout_s=120.0,
    )
    base.update(kw)
    return FederatedRunConfig(**base)


def test_one_round_superlink_and_two_supernodes(tmp_path: Path) -> None:
    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",)))
    seen: list[dict] = []
    res = run_federation(_cfg(manifest), out_dir=tmp_path / "run", on_round=seen.append)
    rounds = {r["round"]: r for r in res["rounds"]}
    assert set(rounds) == {0, 1} and [r["round"] for r in seen] == [0, 1]
    r1 = rounds[1]
    assert r1["replies"] == 2 + 2 and r1["failures"] == 0  # train + evaluate of both hospitals
    assert r1["bytes_sent"] > 2 * 20_000 and r1["bytes_received"] > 2 * 20_000  # weights both ways
    assert 0.0 <= r1["val_macro_f1"] <= 1.0 and r1["train_loss"] > 0
    final = np.load(res["final_weights"])
    init = np.load(tmp_path / "run" / "initial_weights.npz")
    assert any(not np.array_equal(final[k], init[k]) for k in init.files)  # it trained
    logs = {p.name for p in (tmp_path / "run" / "logs").iterdir()}
    assert {"superlink.log", "supernode-0.log", "supernode-1.log", "flwr-run.log"} <= logs
    assert len(res["pids"]) >= 4
    _assert_all_stopped(res["pids"])


def test_supernode_killed_mid_round_never_hangs(tmp_path: Path) -> None:
    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",)))
    cfg = _cfg(
        manifest,
        num_rounds=2,
        round_timeout_s=45.0,
        node_extra={1: {"train-delay-s": "60"}},
    )
    pids: list[int] = []

    def on_start(dep: Deployment) -> None:
        log = dep.supernodes[1].log_path

        def killer() -> None:  # once hospital 1 is inside its (slow) training message
            t0 = time.monotonic()
            while time.monotonic() - t0 < 240:
                if "flwr-clientapp" in log.read_text(errors="replace"):
                    time.sleep(3)
                    pids.extend(dep.pids())
                    dep.kill_supernode(1)
                    return
                time.sleep(0.5)

        threading.Thread(target=killer, daemon=True).start()

    t0 = time.monotonic()
    try:
        res = run_federation(cfg, out_dir=tmp_path / "run", on_start=on_start, timeout_s=400)
    except DeploymentError as exc:  # ending cleanly with an error is allowed
        print(f"outcome: clean error: {str(exc)[:300]}")
        assert "log" in str(exc) or "rounds" in str(exc)
    else:
        pids.extend(res["pids"])
        print("outcome: completed with the survivor:", res["rounds"])
        last = max(res["rounds"], key=lambda r: r["round"])
        assert last["round"] == 2  # completed with the survivor
        assert sum(r.get("failures", 0) for r in res["rounds"]) >= 1 or any(
            r.get("replies", 4) < 4 for r in res["rounds"] if r["round"] > 0
        )
    assert time.monotonic() - t0 < 400
    assert pids
    _assert_all_stopped(pids)


def test_ports_in_use_are_skipped(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    offered: list[int] = []

    def picker(used: set[int]) -> int:  # offers the busy port first, as a race would
        p = busy_port if not offered else find_free_port(exclude=used)
        offered.append(p)
        return p

    try:
        with Deployment(tmp_path, port_picker=picker) as dep:
            dep.start_superlink()
            assert dep.control_address != f"127.0.0.1:{busy_port}"
            assert dep.superlink_proc.alive()
            pids = dep.pids()
    finally:
        busy.close()
    assert offered[0] == busy_port and len(offered) >= 2
    _assert_all_stopped(pids)


def test_bad_manifest_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import dataclasses
    import json

    good = Manifest(
        "beats", "mitdb", 0, None, (Hospital(0, "a", ("208",)), Hospital(1, "b", ("119",))), DS2
    )
    bad = dataclasses.replace(
        good, hospitals=(Hospital(0, "a", ("208",)), Hospital(1, "b", ("208", "119")))
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad.to_dict()), encoding="utf-8")
    with pytest.raises(ManifestError, match="'208' is in two hospitals"):
        run_federation(_cfg(path), out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "logs").exists()


def test_secure_aggregation_one_round(tmp_path: Path) -> None:
    """SecAgg+ (secaggplus_mod + SecAggPlusWorkflow) over three real SuperNodes."""
    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",), ("124",)))
    res = run_federation(
        _cfg(manifest, secure_aggregation=True), out_dir=tmp_path / "run", timeout_s=500
    )
    rounds = {r["round"]: r for r in res["rounds"]}
    assert 1 in rounds and rounds[1]["secure_aggregation"] == "SecAgg+"
    assert 0.0 <= rounds[1]["val_macro_f1"] <= 1.0
    final = np.load(res["final_weights"])
    init = np.load(tmp_path / "run" / "initial_weights.npz")
    assert set(final.files) == set(init.files)
    assert any(not np.allclose(final[k], init[k]) for k in init.files)
    assert np.all([np.isfinite(final[k]).all() for k in final.files])
    log = (tmp_path / "run" / "logs" / "flwr-run.log").read_text(errors="replace")
    assert "Secure aggregation completed" in log
    _assert_all_stopped(res["pids"])


def test_secure_aggregation_refuses_other_strategies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secure aggregation runs with --strategy fedavg"):
        _cfg(tmp_path / "m.json", secure_aggregation=True, strategy="fedprox")


def test_join_an_existing_superlink(tmp_path: Path) -> None:
    """--superlink HOST:PORT: the SuperLink and SuperNodes run elsewhere; only `flwr run` here."""
    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",)))
    with Deployment(tmp_path / "site") as site:  # stands in for the hospitals' deployment
        site.start_superlink()
        for i in (0, 1):
            site.start_supernode(i, {"manifest": str(manifest), "partition-id": i})
        res = run_federation(
            _cfg(manifest), out_dir=tmp_path / "coordinator", superlink=site.control_address
        )
        site_pids = site.pids()
    assert {r["round"] for r in res["rounds"]} == {0, 1}  # streamed back from the SuperLink
    assert not (tmp_path / "coordinator" / "logs" / "superlink.log").exists()  # nothing started
    assert res["final_weights"] is not None
    _assert_all_stopped(res["pids"] + site_pids)


def test_differential_privacy_run_adds_noise(tmp_path: Path) -> None:
    """Flower's server-side clipping + Gaussian noise over real SuperNodes (float counters)."""
    from heartline.federated.privacy import epsilon_for_noise, noise_for_epsilon

    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",)))
    z = noise_for_epsilon(8.0, 1)
    res = run_federation(
        _cfg(manifest, dp_noise_multiplier=z, dp_clip_norm=0.5), out_dir=tmp_path / "run"
    )
    assert epsilon_for_noise(z, 1) == pytest.approx(8.0, rel=1e-3)
    final = np.load(res["final_weights"])
    init = np.load(tmp_path / "run" / "initial_weights.npz")
    float_keys = [k for k in init.files if init[k].dtype.kind == "f"]
    delta = np.concatenate([(final[k] - init[k]).ravel() for k in float_keys])
    # noise of std z * clip / 2 on every coordinate: far larger than a clipped update (<= 0.5)
    assert np.linalg.norm(delta) > 5.0
    assert np.std(delta) == pytest.approx(z * 0.5 / 2, rel=0.2)
    log = (tmp_path / "run" / "logs" / "flwr-run.log").read_text(errors="replace")
    assert "noise" in log.lower()
    _assert_all_stopped(res["pids"])


def test_orchestrator_killed_leaves_no_orphan(tmp_path: Path) -> None:
    """Even a SIGKILLed orchestrator (no cleanup code runs) leaves no SuperLink/SuperNode."""
    import json
    import os
    import signal
    import subprocess

    manifest = _tiny_manifest(tmp_path / "m.json", (("208",), ("119",)))
    script = f"""
import json, sys, time
from pathlib import Path
from heartline.federated.deployment import Deployment
dep = Deployment(Path({str(tmp_path / "dep")!r}))
dep.start_superlink()
dep.start_supernode(0, {{"manifest": {str(manifest)!r}, "partition-id": 0}})
time.sleep(3)
print(json.dumps(dep.pids()), flush=True)
time.sleep(600)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        pids = json.loads(line)
        assert len(pids) >= 2 and all(pid_alive(p) for p in pids[:1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    _assert_all_stopped(pids)
