"""Service fixtures: a migrated database (SQLite per test; PostgreSQL scratch database per
session where a module asks for it), the app, and a seeded "world" of two patients, each with a
clinician, a patient user, a device, ECG frames, beats, vitals and alerts.

PostgreSQL tests never skip: when ``HEARTLINE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) is unreachable they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import migrated_db_url

from heartline.ingestion.payloads import Frame, VitalReading
from heartline.service import create_app
from heartline.service.config import ServiceSettings
from heartline.service.security import (
    create_access_token,
    hash_device_secret,
    hash_password,
    make_password_hasher,
)
from heartline.storage import repository as repo
from heartline.storage import security_repository as srepo
from heartline.storage.engine import make_engine, make_session_factory, session_scope

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
FS = 360.0
PASSWORD = "correct horse battery"


def make_settings(db_url: str, state_dir: Path, **overrides) -> ServiceSettings:
    values = dict(
        environment="development",
        state_dir=state_dir,
        database_url=db_url,
        jwt_secret="test-secret-that-is-long-enough-0123456789",
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    values.update(overrides)
    return ServiceSettings(**values)


def synthetic_counts(n: int, *, seq: int, fs: float = FS) -> np.ndarray:
    """Two leads of a crude ECG (R spikes every 0.8 s) in 11-bit counts."""
    t = (np.arange(n) + seq * n) / fs
    phase = np.mod(t, 0.8)
    mv = 1.2 * np.exp(-((phase - 0.4) ** 2) / (2 * 0.012**2)) - 0.1
    counts = np.clip(np.rint(1024 + 200 * mv), 0, 2047).astype(np.int64)
    return np.stack([counts, counts], axis=1)


def make_frame(device_id: str, seq: int, *, t0: datetime = T0, vitals: bool = True) -> Frame:
    start = t0.timestamp() + seq
    v = (
        (
            VitalReading(
                time_s=start, hr_bpm=75.0, spo2_pct=97.0, temp_c=36.8, sbp_mmhg=120.0, dbp_mmhg=80.0
            ),
        )
        if vitals
        else ()
    )
    return Frame.from_counts(
        synthetic_counts(int(FS), seq=seq),
        device_id=device_id,
        seq=seq,
        start_time_s=start,
        fs_hz=FS,
        lead_names=("MLII", "V5"),
        adc_bits=11,
        adc_gain=(200.0, 200.0),
        adc_baseline=(1024, 1024),
        vitals=v,
    )


def beats_for(
    device_id: str, seq: int, *, t0: datetime = T0, label: str = "N"
) -> list[repo.BeatIn]:
    out = []
    for idx in range(int(FS)):
        t = seq + idx / FS
        if abs(np.mod(t, 0.8) - 0.4) < 0.5 / FS:
            out.append(
                repo.BeatIn(
                    device_id=device_id,
                    seq=seq,
                    sample_idx=idx,
                    time=t0 + timedelta(seconds=t),
                    label=label,
                    probabilities={label: 0.9},
                    confidence=0.9,
                )
            )
    return out


@dataclass
class World:
    """Seeded users/patients; ``tokens[name]`` is a bearer token of user ``name``."""

    settings: ServiceSettings
    factory: object
    user_ids: dict[str, int] = field(default_factory=dict)
    token_keys: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    device_secrets: dict[str, str] = field(default_factory=dict)
    alert_ids: dict[str, int] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this folder's tests (created and dropped per session)."""
    from tests.conftest import scratch_pg_database

    with scratch_pg_database("heartline_svc") as url:
        yield url


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated empty database (modules override the params to add ``"postgresql"``)."""
    return migrated_db_url(request, tmp_path)


def seed_world(settings: ServiceSettings, *, n_frames: int = 5) -> World:
    engine = make_engine(settings.resolved_database_url())
    factory = make_session_factory(engine)
    hasher = make_password_hasher(settings)
    world = World(settings=settings, factory=factory)
    with session_scope(factory) as s:
        for pid in ("p1", "p2"):
            repo.register_patient(s, patient_id=pid, display_name=f"Patient {pid}")
        pw = hash_password(hasher, PASSWORD)
        specs = [
            ("admin", "admin", None),
            ("clin1", "clinician", None),
            ("clin2", "clinician", None),
            ("pat1", "patient", "p1"),
            ("pat2", "patient", "p2"),
        ]
        for name, role, pid in specs:
            u = srepo.create_user(s, username=name, password_hash=pw, role=role, patient_id=pid)
            world.user_ids[name] = u.id
            world.token_keys[name] = u.token_key
        srepo.assign_patient(s, user_id=world.user_ids["clin1"], patient_id="p1")
        srepo.assign_patient(s, user_id=world.user_ids["clin2"], patient_id="p2")
        for dev, pid in (("d1", "p1"), ("d2", "p2")):
            secret = f"secret-of-{dev}-0123456789abcdef"
            repo.register_device(
                s, device_id=dev, patient_id=pid, credential_hash=hash_device_secret(secret)
            )
            world.device_secrets[dev] = secret
            for seq in range(n_frames):
                repo.store_frame(s, frame=make_frame(dev, seq))
                repo.add_beats(
                    s, patient_id=pid, beats=beats_for(dev, seq, label="V" if seq == 2 else "N")
                )
        for pid, dev in (("p1", "d1"), ("p2", "d2")):
            v_beats = repo.beats_between(
                s, patient_id=pid, start=T0 + timedelta(seconds=2), stop=T0 + timedelta(seconds=3)
            )
            a = repo.add_alert(
                s,
                patient_id=pid,
                device_id=dev,
                type="v_couplet",
                severity="warning",
                start=T0 + timedelta(seconds=2),
                evidence={
                    "beats": [b.id for b in v_beats],
                    "trigger": {"times_s": [b.time.timestamp() for b in v_beats]},
                },
            )
            world.alert_ids[pid] = a.id
            c = repo.add_alert(
                s,
                patient_id=pid,
                device_id=dev,
                type="tachycardia",
                severity="critical",
                start=T0 + timedelta(seconds=1),
                end=T0 + timedelta(seconds=4),
            )
            world.alert_ids[pid + "-closed"] = c.id
    for name, uid in world.user_ids.items():
        role = next(r for n, r, _ in specs if n == name)
        world.tokens[name], _ = create_access_token(
            settings=settings, user_id=uid, token_key=world.token_keys[name], role=role
        )
    engine.dispose()
    return world


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> ServiceSettings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def world(settings: ServiceSettings) -> World:
    return seed_world(settings)


@pytest.fixture
def client(settings: ServiceSettings, world: World) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def window() -> dict[str, str]:
    return {"start": T0.isoformat(), "end": (T0 + timedelta(seconds=10)).isoformat()}
