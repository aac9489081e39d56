"""The stream processor's patient-adaptation hook: the adapted patient's beats carry its model
version, the other patient's the base model's; a stored artefact that is corrupt falls back."""

from __future__ import annotations

import time
import uuid

import numpy as np
from sqlalchemy import select
from tests.ingestion.test_processor import PARTS, RawPublisher, _db, _register, _wait

from heartline.edge.adapt import PatientModelRegistry, fit_prototypes
from heartline.edge.runtime import OnnxBeatClassifier, file_sha256
from heartline.edge.shipped import shipped_model_path
from heartline.ingestion.broker import MosquittoSupervisor
from heartline.ingestion.payloads import Frame
from heartline.ingestion.processor import StreamProcessor
from heartline.ingestion.topics import frames_topic
from heartline.storage import make_engine
from heartline.storage.tables import Beat

FS = 360.0


def _ecg_frame(device_id: str, seq: int) -> Frame:
    t = (np.arange(int(FS)) + seq * int(FS)) / FS
    mv = 1.2 * np.exp(-((np.mod(t, 0.8) - 0.4) ** 2) / (2 * 0.012**2)) - 0.1
    counts = np.clip(np.rint(1024 + 200 * mv), 0, 2047).astype(np.int64)
    return Frame.from_counts(
        np.stack([counts, counts], axis=1),
        device_id=device_id,
        seq=seq,
        start_time_s=1_700_000_000.0 + seq,
        fs_hz=FS,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
    )


def _versions(url: str) -> dict[str, set[str | None]]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(Beat.patient_id, Beat.model_version)).all()
    engine.dispose()
    out: dict[str, set[str | None]] = {}
    for pid, v in rows:
        out.setdefault(pid, set()).add(v)
    return out


def test_adapted_patient_beats_carry_the_adapted_version(tmp_path) -> None:
    base = OnnxBeatClassifier(shipped_model_path())
    sha = file_sha256(base.path)
    rng = np.random.default_rng(0)
    art = fit_prototypes(
        rng.standard_normal((30, int(base.feature_dim))),
        np.repeat([0, 2], 15),
        np.tile([0.9, 0.025, 0.025, 0.025, 0.025], (30, 1)),
        patient_id="p-a1",
        base_sha256=sha,
        version=4,
    )
    stored = {"p-a1": (4, "prototypes", art.to_bytes()), "p-a3": (1, "prototypes", b"corrupt")}
    registry = PatientModelRegistry(base, stored.get)
    url = _db(tmp_path)
    devices = ("a1", "a2", "a3")
    _register(url, *devices)
    with MosquittoSupervisor(tmp_path / "broker") as broker:
        proc = StreamProcessor(
            address=broker.address,
            database_url=url,
            model=base,
            partitions=range(PARTS),
            n_partitions=PARTS,
            batch_wait_s=0.0,
            batch_idle_s=0.001,
            client_id=f"proc-{uuid.uuid4().hex[:6]}",
            patient_models=registry,
        ).start()
        raw = RawPublisher(broker.address)
        try:
            for s in range(20):
                for d in devices:
                    raw.send(frames_topic(d, partitions=PARTS), _ecg_frame(d, s).to_json())
                time.sleep(0.02)
            assert _wait(lambda: len(_versions(url)) == 3, 60), _versions(url)
        finally:
            raw.close()
            proc.stop()
    versions = _versions(url)
    base_version = f"{base.name}@{sha[:12]}"
    assert versions["p-a1"] == {f"{base_version}+prototypes:p-a1/v4"}
    assert versions["p-a2"] == {base_version}
    assert versions["p-a3"] == {base_version}  # corrupt artefact: base model, with a notice
    assert any("p-a3" in n and "not used" in n for n in registry.notices)
