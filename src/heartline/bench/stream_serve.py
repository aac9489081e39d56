"""``heartline bench stream --serve-url URL``: the capacity of a running ``heartline serve``.

Nothing of the system under test is started here: the patients and their devices are registered
through its API (an admin's login; each device gets its credentials from ``POST
/api/v1/devices``), frames go over its broker (``--serve-broker-url``, the ``broker`` line that
``heartline serve`` prints) at real-time pace from the load generator of
:mod:`heartline.bench.stream_load`, and its own stream-processor workers store them. Loss and
latency are read from its database (``--serve-database-url``, read only): a frame is stored when
its ``frames`` row exists, and its latency is ``frames.received_at`` (set in the transaction
that stores it) minus the end of the frame on the device clock. The search doubles the patients
from ``start`` up to ``target`` and then bisects, as the in-process capacity search does.

The generator publishes with four MQTT connections, so the broker must accept them
(``heartline serve`` in development mode; a production broker's ACL lets each device write only
its own topic).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from heartline.bench.stream_load import (
    P99_LIMIT_S,
    WARMUP_S,
    FramePool,
    GenResult,
    capacity_search,
    generate,
    step_passed,
    wait_stored,
)

__all__ = ["register_through_api", "run_serve_stream_bench", "serve_markdown"]

log = logging.getLogger(__name__)


def register_through_api(client: Any, device_ids: list[str], *, workers: int = 8) -> dict[str, str]:
    """Register a patient ``p-<device>`` and its device through the API; ``{device: secret}``."""
    secrets: dict[str, str] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def one(ids: list[str]) -> None:
        for d in ids:
            r = client.post("/api/v1/patients", json={"id": f"p-{d}"})
            if r.status_code not in (201, 409):
                with lock:
                    errors.append(f"patient p-{d}: {r.status_code} {r.text[:200]}")
                continue
            r = client.post("/api/v1/devices", json={"id": d, "patient_id": f"p-{d}"})
            with lock:
                if r.status_code == 201:
                    secrets[d] = r.json()["secret"]
                else:
                    errors.append(f"device {d}: {r.status_code} {r.text[:200]}")

    chunks = [device_ids[i::workers] for i in range(workers)]
    ths = [threading.Thread(target=one, args=(c,)) for c in chunks if c]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise RuntimeError(f"registration through the API failed: {errors[:3]}")
    return secrets


def _utc(t: datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _stored(engine: Any, prefix: str, t_after: float) -> tuple[int, np.ndarray]:
    """Rows of devices ``prefix-*`` and latencies of the frames that ended after ``t_after``."""
    from sqlalchemy import select

    from heartline.storage.tables import FrameRecord

    with engine.connect() as c:
        rows = c.execute(
            select(FrameRecord.device_time, FrameRecord.received_at).where(
                FrameRecord.device_id.like(f"{prefix}-%")
            )
        ).all()
    ends = np.asarray([_utc(r.device_time) + 1.0 for r in rows])
    lat = np.asarray([_utc(r.received_at) for r in rows]) - ends if rows else np.zeros(0)
    return len(rows), lat[ends > t_after] if rows else lat


def run_serve_stream_bench(
    out: str | os.PathLike[str],
    *,
    serve_url: str,
    broker_url: str,
    database_url: str,
    username: str,
    password: str,
    n_partitions: int,
    start: int = 100,
    target: int = 1000,
    patients: int | None = None,
    duration_s: int = 20,
    max_steps: int = 8,
    drain_s: float = 30.0,
    data_dir: str | os.PathLike[str] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Capacity search (or one fixed load of ``patients``) against a running ``heartline serve``.

    Writes ``OUT/stream_serve.json`` and ``OUT/stream_serve.md``; returns the JSON dict.
    """
    import httpx

    from heartline.ingestion.broker import parse_broker_url
    from heartline.ingestion.live import ARRHYTHMIA_RECORDS
    from heartline.storage import make_engine

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = report or (lambda m: log.info(m))
    address = parse_broker_url(broker_url)
    t_begin = time.time()
    client = httpx.Client(base_url=serve_url.rstrip("/"), timeout=30.0)
    r = client.post("/api/v1/login/access-token", data={"username": username, "password": password})
    if r.status_code != 200:
        raise RuntimeError(
            f"login to {serve_url} as {username!r} failed: {r.status_code} {r.text[:200]}"
        )
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    engine = make_engine(database_url)
    frames = FramePool(ARRHYTHMIA_RECORDS, 60, Path(data_dir) if data_dir else None)
    tag = f"sv{uuid.uuid4().hex[:4]}"

    def step(n: int) -> dict[str, Any]:
        prefix = f"{tag}n{n}"
        ids = [f"{prefix}-{i:05d}" for i in range(n)]
        report(f"serve capacity: registering {n} devices through the API")
        t_reg = time.time()
        register_through_api(client, ids)
        reg_s = time.time() - t_reg
        report(f"serve capacity: {n} patients x {duration_s} s")
        box: list[GenResult] = []
        t0 = time.time()
        th = threading.Thread(
            target=lambda: box.append(
                generate(address, frames, ids, duration_s=duration_s, n_partitions=n_partitions)
            )
        )
        th.start()
        th.join()
        if not box:
            raise RuntimeError("the load generator failed")
        gen = box[0]
        stored, lat = wait_stored(
            lambda: _stored(engine, prefix, t0 + WARMUP_S),
            gen.sent,
            drain_s,
            count=lambda got: got[0],
        )
        p99 = float(np.percentile(lat, 99)) if lat.size else float("nan")
        lost = gen.sent - stored
        res = {
            "patients": n,
            "duration_s": duration_s,
            "registration_s": reg_s,
            "frames_sent": gen.sent,
            "frames_stored": stored,
            "frames_lost": lost,
            "p50_latency_s": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p99_latency_s": p99,
            "max_latency_s": float(lat.max()) if lat.size else float("nan"),
            "generator_lag_p99_s": gen.lag_p99_s,
            "load_average": list(os.getloadavg()),
            "passed": step_passed(lost, p99),
        }
        log.info("serve capacity N=%d: %s", n, res)
        return res

    if patients:
        search = capacity_search(step, start=patients, target=target, max_steps=1, settle_s=0.0)
    else:
        search = capacity_search(step, start=start, target=target, max_steps=max_steps)
    engine.dispose()
    client.close()
    result = {
        "config": {
            "serve_url": serve_url,
            "broker_url": address.url,
            "database": database_url.split("@")[-1],
            "partitions": n_partitions,
            "step_duration_s": duration_s,
            "p99_limit_s": P99_LIMIT_S,
            "latency": "end of frame on the device clock -> frames.received_at (row written)",
            "cpu_count": os.cpu_count(),
        },
        **search,
        "elapsed_s": time.time() - t_begin,
    }
    (out_dir / "stream_serve.json").write_text(json.dumps(result, indent=2, default=float))
    (out_dir / "stream_serve.md").write_text(serve_markdown(result))
    return result


def serve_markdown(r: dict[str, Any]) -> str:
    """Markdown report of :func:`run_serve_stream_bench`."""
    cfg = r["config"]
    lines = [
        "# Stream capacity of a running `heartline serve`",
        "",
        f"`{cfg['serve_url']}`, broker `{cfg['broker_url']}`, database `{cfg['database']}`, "
        f"{cfg['partitions']} partitions, {cfg['cpu_count']} CPU cores. Latency = {cfg['latency']}; "
        f"pass = p99 <= {cfg['p99_limit_s']} s and no frame lost.",
        "",
        f"**Patients held: {r['patients']}** (target {r['target_patients']}: "
        f"{'met' if r['target_met'] else 'not met'}).",
        "",
        "| patients | sent | stored | lost | p50 (s) | p99 (s) | max (s) | generator lag p99 (s) | load avg | pass |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in r["steps"]:
        lines.append(
            f"| {s['patients']} | {s['frames_sent']} | {s['frames_stored']} | {s['frames_lost']} | "
            f"{s['p50_latency_s']:.3f} | {s['p99_latency_s']:.3f} | {s['max_latency_s']:.3f} | "
            f"{s['generator_lag_p99_s']:.3f} | {'/'.join(f'{x:.1f}' for x in s['load_average'])} | "
            f"{'yes' if s['passed'] else 'no'} |"
        )
    lines += ["", f"Total run time {r['elapsed_s']:.0f} s.", ""]
    return "\n".join(lines)
