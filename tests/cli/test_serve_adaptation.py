"""`heartline serve` runs each patient's adapted model live (worker processes, SQLite default).

End to end against the running service: a clinician confirms the patient's beat templates
through the API and adapts; the worker process then labels that patient's new beats with the
adapted version; a rollback returns them to the base model; a corrupt stored artefact falls back
to the base model with a notice (API and worker status), and nothing stops.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tests.cli.conftest import Served

from heartline.ingestion.adaptation import DEFAULT_REFRESH_S

pytestmark = pytest.mark.slow

PID = "p-sim-0001"
API = "/api/v1"


def _versions_after(client: httpx.Client, headers: dict, t: datetime, *, n: int, deadline: float):
    """Model versions of the patient's beats stored with time >= ``t`` (waits for ``n`` beats)."""
    beats: list[dict] = []
    while time.monotonic() < deadline:
        r = client.get(
            f"{API}/patients/{PID}/beats",
            params={"start": t.isoformat(), "end": (t + timedelta(hours=1)).isoformat()},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        beats = r.json()
        if len(beats) >= n:
            break
        time.sleep(1.0)
    assert len(beats) >= n, f"only {len(beats)} beats after {t}"
    return {b["model_version"] for b in beats}


def test_serve_uses_adapted_models_live(served: Served) -> None:
    state = served.state_dir
    settle_s = 2 * DEFAULT_REFRESH_S + 3.0  # loader snapshot + registry cache + a batch
    deadline = time.monotonic() + 360
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        headers = served.login(client)

        def settled() -> set[str | None]:
            """Model versions of the first 5 beats once the workers have seen the change."""
            start = datetime.now(UTC) + timedelta(seconds=settle_s)
            return _versions_after(client, headers, start, n=5, deadline=deadline)

        t_start = datetime.now(UTC) - timedelta(minutes=5)
        # the base model labels the first beats, and says so on each of them
        base = _versions_after(client, headers, t_start, n=40, deadline=deadline)
        assert len(base) == 1 and re.fullmatch(r"hybrid@[0-9a-f]{12}", base.pop() or "")
        # review: confirm every template with the label the model gave most of its beats
        window = {"start": t_start.isoformat(), "end": datetime.now(UTC).isoformat()}
        templates = client.get(
            f"{API}/patients/{PID}/beat-templates", params=window, headers=headers
        ).json()
        assert templates and sum(t["count"] for t in templates) >= 40
        for t in templates:
            label = max(t["label_counts"], key=t["label_counts"].get)
            if label not in "NSVFQ" or label == "?":
                continue
            r = client.post(
                f"{API}/patients/{PID}/beat-reviews",
                json={"beat_ids": t["beat_ids"], "label": label, "cluster": t["cluster"]},
                headers=headers,
            )
            assert r.status_code == 201, r.text
        r = client.post(f"{API}/patients/{PID}/adaptation", headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 1 and r.json()["active"]
        # the worker process picks the adapted model up without a restart
        adapted = settled()
        assert len(adapted) == 1
        v1 = adapted.pop()
        assert (
            v1 is not None and v1.endswith(f"+prototypes:{PID}/v1") and v1.startswith("hybrid@")
        ), v1
        # rollback: the base model again
        r = client.post(f"{API}/patients/{PID}/models/rollback", headers=headers)
        assert r.status_code == 200 and r.json()["active_version"] is None
        after = settled()
        assert after == {v1.split("+")[0]}
        # a corrupt stored artefact (e.g. a damaged database page): base model and a notice
        from heartline.storage import adaptation_repository as arepo
        from heartline.storage import make_engine, make_session_factory, session_scope

        engine = make_engine(f"sqlite:///{state / 'heartline.db'}")
        with session_scope(make_session_factory(engine)) as s:
            arepo.add_model(
                s,
                patient_id=PID,
                method="prototypes",
                base_sha256="0" * 64,
                artefact=b"PK\x03\x04 not an artefact",
                summary={},
                actor="disk",
            )
        engine.dispose()
        state_now = client.get(f"{API}/patients/{PID}/models", headers=headers).json()
        assert state_now["active_version"] == 2
        assert "cannot be read" in (state_now["notice"] or "")
        after = settled()
        assert after == {v1.split("+")[0]}
        status_file = state / "workers" / "worker-0.json"
        notices: list[str] = []
        while time.monotonic() < deadline and not notices:
            try:
                notices = json.loads(status_file.read_text()).get("adaptation_notices", [])
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        assert any(PID in n and "not used" in n for n in notices), notices
        assert served.proc.poll() is None, "serve stopped"
