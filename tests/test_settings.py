from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from heartline.settings import Settings, load_settings


def test_defaults_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HEARTLINE_MQTT_PARTITIONS", "4")
    s = load_settings()
    assert s.environment == "development" and s.is_development
    assert s.resolved_database_url() == f"sqlite:///{tmp_path}/heartline.db"
    assert s.broker_url is None and s.mqtt_partitions == 4
    s = load_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1/test",
        broker_url="mqtt://127.0.0.1:1883",
    )
    assert s.resolved_database_url().startswith("postgresql+psycopg://")


def test_production_refuses_placeholder_secrets(monkeypatch):
    monkeypatch.delenv("HEARTLINE_BROKER_PASSWORD", raising=False)
    with pytest.raises(ValidationError, match="HEARTLINE_BROKER_PASSWORD"):
        load_settings(environment="production")
    for placeholder in ["", "changeme", "CHANGEME", "secret"]:
        with pytest.raises(ValidationError, match="placeholder"):
            load_settings(environment="production", broker_password=placeholder)
    ok = load_settings(environment="production", broker_password="a-real-long-password")
    assert ok.broker_password.get_secret_value() == "a-real-long-password"


def test_secrets_added_by_subclasses_are_checked_too():
    class ApiSettings(Settings):
        jwt_secret: SecretStr = SecretStr("changeme")

    with pytest.raises(ValidationError, match="HEARTLINE_JWT_SECRET"):
        ApiSettings(environment="production", broker_password="real-password-1")
    assert ApiSettings(environment="development").jwt_secret.get_secret_value() == "changeme"


def test_invalid_values():
    with pytest.raises(ValidationError):
        load_settings(environment="staging")
    with pytest.raises(ValidationError):
        load_settings(mqtt_partitions=0)


def test_rhythm_interval_reaches_the_processors(monkeypatch):
    """``HEARTLINE_RHYTHM_INTERVAL_S`` / ``--rhythm-interval-s`` is a processor keyword, bounded."""
    from heartline.ingestion.worker import processor_settings

    monkeypatch.setenv("HEARTLINE_RHYTHM_INTERVAL_S", "15")
    assert processor_settings(load_settings())["rhythm_interval_s"] == 15.0
    assert processor_settings(load_settings(rhythm_interval_s=5))["rhythm_interval_s"] == 5.0
    for bad in (0.5, 0, -5, 31):
        with pytest.raises(ValidationError, match="rhythm_interval_s"):
            load_settings(rhythm_interval_s=bad)


def test_one_rhythm_cadence_default_everywhere():
    """Settings, the processor and the replaying benchmarks share one default and one range."""
    import inspect

    from typer.testing import CliRunner

    from heartline.bench.alarms import run_alarms_benchmark
    from heartline.bench.stream_profile import run_stream_profile
    from heartline.cli.main import app
    from heartline.defaults import DEFAULT_RHYTHM_INTERVAL_S
    from heartline.ingestion.processor import StreamProcessor

    assert load_settings().rhythm_interval_s == DEFAULT_RHYTHM_INTERVAL_S
    for fn in (StreamProcessor.__init__, run_alarms_benchmark, run_stream_profile):
        default = inspect.signature(fn).parameters["rhythm_interval_s"].default
        assert default == DEFAULT_RHYTHM_INTERVAL_S, fn
    runner = CliRunner()
    for args in (["alarms", "x.csv", "--out", "o.csv"], ["bench", "alarms"]):
        res = runner.invoke(app, [*args, "--rhythm-interval-s", "0.5"])
        assert res.exit_code == 2 and "rhythm-interval-s" in res.output, res.output


def test_af_gate_reaches_the_processors(monkeypatch):
    """``HEARTLINE_AF_GATE`` / ``serve --af-gate`` is the processors' ``af_gate`` (off by default)."""
    import inspect

    from heartline.ingestion.processor import StreamProcessor
    from heartline.ingestion.worker import processor_settings

    assert processor_settings(load_settings())["af_gate"] is False
    assert inspect.signature(StreamProcessor.__init__).parameters["af_gate"].default is False
    monkeypatch.setenv("HEARTLINE_AF_GATE", "1")
    assert processor_settings(load_settings())["af_gate"] is True
    assert processor_settings(load_settings(af_gate=False))["af_gate"] is False
