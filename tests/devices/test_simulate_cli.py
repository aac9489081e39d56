"""``heartline simulate`` end to end with its own Mosquitto, and against the system broker."""

from __future__ import annotations

from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.devices.store_forward import StoreForwardQueue


def test_simulate_with_private_broker_continues_seq(tmp_path, data_dir):
    runner = CliRunner()
    args = [
        "simulate",
        "-n",
        "2",
        "--duration",
        "5",
        "--fast",
        "--noise-snr",
        "12",
        "--state-dir",
        str(tmp_path),
        "--data-dir",
        str(data_dir),
    ]
    for expected_last in (4, 9):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "started Mosquitto" in result.output and "all frames acknowledged" in result.output
        with StoreForwardQueue(tmp_path / "simulate" / "devices" / "sim-0002.sqlite") as q:
            assert q.last_seq == expected_last and len(q) == 0


def test_simulate_against_system_broker(tmp_path, data_dir, system_broker):
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "-n",
            "1",
            "--duration",
            "3",
            "--fast",
            "--broker-url",
            system_broker.url,
            "--payload-version",
            "1",  # JSON integer lists (the private-broker test above sends the default, 2)
            "--state-dir",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "started Mosquitto" not in result.output and "all frames acknowledged" in result.output


def test_bad_disconnect_option(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--disconnect",
            "soon",
            "--state-dir",
            str(tmp_path),
            "--fast",
            "--duration",
            "1",
        ],
    )
    assert result.exit_code == 2 and "START:DURATION" in result.output


def test_bad_payload_version(tmp_path):
    result = CliRunner().invoke(
        app, ["simulate", "--payload-version", "3", "--state-dir", str(tmp_path), "--fast"]
    )
    assert result.exit_code == 2 and "--payload-version" in result.output
