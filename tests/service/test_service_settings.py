"""ServiceSettings (placeholder secrets refused outside development), seeding, migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError

import heartline.storage.security_tables  # noqa: F401  (registers the tables on Base)
from heartline.service.config import ServiceSettings, load_service_settings
from heartline.service.security import make_password_hasher, verify_password
from heartline.service.seed import seed_demo
from heartline.storage import security_repository as srepo
from heartline.storage.engine import make_engine, make_session_factory, session_scope
from heartline.storage.migrations import head_revision, upgrade_database
from heartline.storage.tables import Base

GOOD = "kV3q-8ZpL1x_Rw7TnB0yHc5sJ2mDf9Ga4EuQ6-Zt"  # random-looking: passes the entropy check


@pytest.mark.parametrize("secret", ["changeme", "secret", "", "  CHANGEME "])
def test_placeholder_jwt_secret_refused_in_production(tmp_path, secret):
    with pytest.raises(ValidationError, match="HEARTLINE_JWT_SECRET"):
        ServiceSettings(
            environment="production", state_dir=tmp_path, jwt_secret=secret, broker_password=GOOD
        )


def test_default_settings_refused_in_production_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("HEARTLINE_BROKER_PASSWORD", GOOD)
    with pytest.raises(ValidationError, match="HEARTLINE_JWT_SECRET"):
        load_service_settings(state_dir=tmp_path)
    monkeypatch.setenv("HEARTLINE_JWT_SECRET", GOOD)
    assert load_service_settings(state_dir=tmp_path).jwt_secret.get_secret_value() == GOOD


def test_short_secret_refused_in_production(tmp_path):
    with pytest.raises(ValidationError, match="at least 32"):
        ServiceSettings(
            environment="production",
            state_dir=tmp_path,
            jwt_secret="short-but-not-placeholder",
            broker_password=GOOD,
        )


def test_production_refuses_demo_users_and_wildcard_cors(tmp_path):
    base = dict(environment="production", state_dir=tmp_path, jwt_secret=GOOD, broker_password=GOOD)
    with pytest.raises(ValidationError, match="seed_demo_users"):
        ServiceSettings(**base, seed_demo_users=True)
    with pytest.raises(ValidationError, match="cors"):
        ServiceSettings(**base, cors_origins=["*"])


def test_tls_paths_come_together(tmp_path):
    with pytest.raises(ValidationError, match="tls_certfile and tls_keyfile"):
        ServiceSettings(state_dir=tmp_path, tls_certfile=tmp_path / "c.pem")
    s = ServiceSettings(
        state_dir=tmp_path, tls_certfile=tmp_path / "c.pem", tls_keyfile=tmp_path / "k.pem"
    )
    assert s.tls_keyfile == tmp_path / "k.pem"


def test_development_replaces_placeholder_with_random_secret(tmp_path):
    secret = ServiceSettings(state_dir=tmp_path, jwt_secret="changeme").jwt_secret
    assert secret.get_secret_value() not in {"changeme", ""}
    assert ServiceSettings(state_dir=tmp_path).jwt_secret == secret  # kept in the state dir


def test_seed_demo_creates_users_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade_database(url)
    settings = ServiceSettings(
        state_dir=tmp_path, argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1
    )
    hasher = make_password_hasher(settings)
    factory = make_session_factory(make_engine(url))
    with session_scope(factory) as s:
        creds = seed_demo(s, hasher=hasher)
    assert {u.role for u in creds.users} == {"admin", "clinician", "patient"}
    with session_scope(factory) as s:
        again = seed_demo(s, hasher=hasher)
        clin = srepo.get_user_by_username(s, username="clinician")
        assert srepo.assigned_patient_ids(s, user_id=clin.id) == sorted(creds.patient_ids)
        admin = srepo.get_user_by_username(s, username="admin")
        pw = next(u.password for u in creds.users if u.username == "admin")
        assert verify_password(hasher, admin.password_hash, pw)
        assert admin.password_hash.startswith("$argon2id$")
    assert all(u.password is None for u in again.users)


def test_security_migration_matches_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert upgrade_database(url) == head_revision()
    assert head_revision() >= "0002"  # the security tables (0002) are in the chain
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_security_migration_on_postgresql(pg_url):
    from tests.conftest import reset_pg

    reset_pg(pg_url)
    upgrade_database(pg_url)
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []
