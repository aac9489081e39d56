"""MosquittoSupervisor runs a real child broker (/usr/sbin/mosquitto) on 127.0.0.1."""

from __future__ import annotations

import os
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from heartline.ingestion.broker import (
    BrokerError,
    MosquittoSupervisor,
    find_mosquitto,
    mosquitto_password_hash,
    parse_broker_url,
    wait_for_port,
)


def connect_rc(
    host: str, port: int, *, user: str | None = None, password: str | None = None
) -> str:
    got: dict[str, object] = {}
    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    if user:
        c.username_pw_set(user, password)

    def on_connect(client, userdata, flags, rc, props):
        got["rc"] = rc
        done.set()

    def on_disconnect(client, userdata, flags, rc, props):
        got.setdefault("rc", rc)
        done.set()

    c.on_connect, c.on_disconnect = on_connect, on_disconnect
    c.connect(host, port, keepalive=5)
    c.loop_start()
    done.wait(5)
    c.disconnect()
    c.loop_stop()
    return str(got.get("rc"))


def wait_until(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_start_stop(tmp_path):
    with MosquittoSupervisor(tmp_path) as broker:
        assert broker.is_running() and broker.host == "127.0.0.1"
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert connect_rc(broker.host, broker.port) == "Success"
        conf = broker.config_path.read_text()
        assert "persistence true" in conf and "allow_anonymous true" in conf
        pid = broker.pid
    assert not broker.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not wait_for_port("127.0.0.1", broker.port, timeout_s=0.3)
    assert (tmp_path / "persistence" / "mosquitto.db").exists()  # saved on clean stop


def test_watchdog_restarts_a_dead_broker(tmp_path):
    with MosquittoSupervisor(tmp_path) as broker:
        port, pid = broker.port, broker.pid
        broker.kill()
        assert wait_until(lambda: broker.is_running() and broker.pid != pid, 10)
        assert broker.restarts == 1 and broker.port == port
        assert connect_rc(broker.host, port) == "Success"


def test_graceful_restart_keeps_port_and_queued_messages(tmp_path):
    got: list[bytes] = []
    with MosquittoSupervisor(tmp_path) as broker:
        # A persistent session subscribes, goes away; a message is queued for it; broker restarts.
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="persist-sub", clean_session=False)
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        sub.subscribe("t/q", qos=1)
        time.sleep(0.3)
        sub.disconnect()
        sub.loop_stop()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        pub.publish("t/q", b"kept", qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        old_pid = broker.pid
        broker.restart()
        assert broker.pid != old_pid and broker.restarts == 0
        sub.on_message = lambda c, u, m: got.append(m.payload)
        sub.reconnect()
        sub.loop_start()
        assert wait_until(lambda: got == [b"kept"], 5)
        sub.disconnect()
        sub.loop_stop()


def test_production_refuses_anonymous(tmp_path):
    with MosquittoSupervisor(tmp_path, production=True, users={"heartline": "s3cret-pw"}) as broker:
        assert "allow_anonymous false" in broker.config_path.read_text()
        assert oct((tmp_path / "passwords").stat().st_mode & 0o777) == "0o600"
        assert connect_rc(broker.host, broker.port) == "Not authorized"
        assert (
            connect_rc(broker.host, broker.port, user="heartline", password="wrong")
            == "Not authorized"
        )
        assert (
            connect_rc(broker.host, broker.port, user="heartline", password="s3cret-pw")
            == "Success"
        )
        assert broker.address.username == "heartline"
    with pytest.raises(ValueError, match="anonymous"):
        MosquittoSupervisor(tmp_path, production=True)


def test_missing_binary_says_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        MosquittoSupervisor(tmp_path, binary=tmp_path / "no-such-mosquitto")
    monkeypatch.setenv("PATH", str(tmp_path))
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, path=None: None if name == "mosquitto" else real_which(name, path=path),
    )
    with pytest.raises(BrokerError, match="apt-get install mosquitto"):
        find_mosquitto()


def test_bad_config_is_a_clear_error(tmp_path):
    # Port already taken by another listener: mosquitto exits and we say so.
    with MosquittoSupervisor(tmp_path / "a") as first:
        with pytest.raises(BrokerError, match="already in use"):
            MosquittoSupervisor(
                tmp_path / "b", port=first.port, supervise=False, start_timeout_s=3
            ).start()


def test_password_hash_format():
    h = mosquitto_password_hash("pw", salt=b"0123456789ab")
    assert h.startswith("$7$101$") and len(h.split("$")) == 5
    assert h == mosquitto_password_hash("pw", salt=b"0123456789ab")


def test_parse_broker_url():
    a = parse_broker_url("mqtt://127.0.0.1")
    assert (a.host, a.port, a.username) == ("127.0.0.1", 1883, None)
    b = parse_broker_url("mqtt://u%40x:p%3Aw@localhost:18830")
    assert (b.username, b.password, b.port) == ("u@x", "p:w", 18830)
    for bad in ["http://x", "mqtt://", "", "mqtt://h:99999"]:
        with pytest.raises(ValueError):
            parse_broker_url(bad)
