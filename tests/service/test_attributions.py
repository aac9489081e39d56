"""The occlusion attribution provider: real MIT-BIH V beats stored as frames, an alert on them,
and the explanation's heat band (non-null, concentrated on the QRS complexes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import make_settings, seed_world

from heartline.ingestion.payloads import Frame
from heartline.service import create_app
from heartline.service.attributions import OcclusionAttributionProvider
from heartline.service.routes.explain import _PROVIDERS
from heartline.storage import repository as repo
from heartline.storage.engine import session_scope

T1 = datetime(2026, 1, 5, 13, 0, 0, tzinfo=UTC)
LEAD_S = 35.0  # stored ECG before the first V beat of the alert
QRS_HALF_S = 0.08


def store_record_119(factory, data_dir: Path, *, device_id: str = "d9", patient_id: str = "p1"):
    """40 s of MIT-BIH 119 as 1 s frames of device ``device_id`` and its annotated beats
    (AAMI labels, as the live pipeline would have stored them); returns the V beats' rows."""
    import wfdb

    from heartline.data.aami import aami_class
    from heartline.data.paths import record_path
    from heartline.io import read_annotations

    path = str(record_path("mitdb", "119", data_dir=data_dir))
    rec = wfdb.rdrecord(path, sampto=360 * 200, physical=False)
    ann = read_annotations(path).beats()
    fs = float(rec.fs)
    v_idx = ann.sample_idx[(np.asarray([aami_class(s) for s in ann.symbol]) == "V")]
    first_v = int(v_idx[v_idx > LEAD_S * fs][0])
    start = first_v - int(LEAD_S * fs)
    n_frames = 40
    counts = rec.d_signal[start : start + n_frames * int(fs)]
    beats = []
    for seq in range(n_frames):
        f = Frame.from_counts(
            counts[seq * int(fs) : (seq + 1) * int(fs)].astype(np.int64),
            device_id=device_id,
            seq=seq,
            start_time_s=T1.timestamp() + seq,
            fs_hz=fs,
            lead_names=tuple(rec.sig_name),
            adc_bits=11,
            adc_gain=tuple(float(g) for g in rec.adc_gain),
            adc_baseline=tuple(int(b) for b in rec.baseline),
        )
        beats.append(f)
    with session_scope(factory) as s:
        repo.register_device(s, device_id=device_id, patient_id=patient_id, credential_hash="x")
        for f in beats:
            repo.store_frame(s, frame=f)
        rows = []
        for idx, sym in zip(ann.sample_idx, ann.symbol, strict=True):
            rel = int(idx) - start
            if not 0 <= rel < n_frames * int(fs):
                continue
            lab = aami_class(sym)
            rows.append(
                repo.BeatIn(
                    device_id=device_id,
                    seq=rel // int(fs),
                    sample_idx=rel % int(fs),
                    time=T1 + timedelta(seconds=rel / fs),
                    label=lab,
                    probabilities={lab: 0.9},
                    confidence=0.9,
                )
            )
        repo.add_beats(s, patient_id=patient_id, beats=rows)
        stored = repo.beats_between(
            s, patient_id=patient_id, start=T1 + timedelta(seconds=LEAD_S - 0.1),
            stop=T1 + timedelta(seconds=n_frames - 2),
        )  # fmt: skip
        v = [b for b in stored if b.label == "V"][:2]
        alert = repo.add_alert(
            s,
            patient_id=patient_id,
            device_id=device_id,
            type="frequent_pvc",
            severity="warning",
            start=v[0].time,
            evidence={
                "beats": [b.id for b in v],
                "trigger": {"times_s": [b.time.timestamp() for b in v]},
            },
        )
        return alert.id, [(b.id, b.time) for b in v]


@pytest.fixture
def v_world(db_url, tmp_path, data_dir):
    world = seed_world(make_settings(db_url, tmp_path))
    alert_id, v = store_record_119(world.factory, data_dir)
    return world, alert_id, v


def test_create_app_registers_the_occlusion_provider_once(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    create_app(settings)
    create_app(settings)
    occ = [p for p in _PROVIDERS.values() if isinstance(p, OcclusionAttributionProvider)]
    assert len(occ) == 1


def test_v_beat_alert_gets_attributions_on_the_qrs(v_world):
    world, alert_id, v = v_world
    with TestClient(create_app(world.settings)) as client:
        e = client.get(f"/api/v1/alerts/{alert_id}/explanation", headers=world.auth("clin1"))
    assert e.status_code == 200, e.text
    e = e.json()
    assert sorted(e["highlighted_beat_ids"]) == sorted(i for i, _ in v)
    att = e["attributions"]
    assert att is not None and att["method"].startswith("occlusion")
    segs = e["ecg"]["segments"]
    assert [len(a) for a in att["segments"]] == [
        len(s["samples_mv"][att["lead_index"]]) for s in segs
    ]
    assert segs[0]["lead_names"][att["lead_index"]] == "MLII"
    t = np.concatenate(
        [
            datetime.fromisoformat(s["start_time"]).timestamp() + np.arange(len(a)) / s["fs_hz"]
            for s, a in zip(segs, att["segments"], strict=True)
        ]
    )
    a = np.abs(np.concatenate([np.asarray(x) for x in att["segments"]]))
    assert a.max() == pytest.approx(1.0, abs=1e-3)
    for _, bt in v:
        r = bt.timestamp()
        window = (t >= r - 0.25) & (t < r + 0.45)
        qrs = np.abs(t - r) <= QRS_HALF_S
        # R +- 80 ms is 23 % of the beat window; it carries most of the attribution
        share = a[qrs].sum() / a[window].sum()
        assert share > 0.5, share
    # nothing outside the highlighted beats' windows
    near = np.zeros_like(a, dtype=bool)
    for _, bt in v:
        near |= (t >= bt.timestamp() - 0.26) & (t < bt.timestamp() + 0.46)
    assert a[~near].max() == 0


def test_rhythm_alarm_has_no_attributions(v_world):
    world, _alert_id, _v = v_world
    with TestClient(create_app(world.settings)) as client:
        e = client.get(
            f"/api/v1/alerts/{world.alert_ids['p1-closed']}/explanation",
            headers=world.auth("clin1"),
        ).json()
    assert e["attributions"] is None  # a rhythm alarm highlights no beat
