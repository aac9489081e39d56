"""Per-device MQTT credentials with topic ACLs, and TLS, against a real Mosquitto child.

Everything runs on 127.0.0.1 with bounded timeouts. Mosquitto drops an ACL-denied publish
silently (the publisher still gets its PUBACK), so "not delivered" is checked as: nothing
arrives within ~1 s while a control message published afterwards does arrive.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from heartline.ingestion.acks import acks_topic
from heartline.ingestion.broker import (
    BrokerAddress,
    BrokerError,
    MosquittoSupervisor,
    configure_client,
    find_mosquitto,
    parse_broker_url,
)
from heartline.ingestion.topics import frames_topic
from heartline.settings import load_settings

try:
    find_mosquitto()
    HAVE_MOSQUITTO = True
except BrokerError:
    HAVE_MOSQUITTO = False

needs_mosquitto = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto is not installed")

N_PART = 4
PROC = ("heartline", "proc-secret-123")
DEV_A = ("dev-a", "secret-a-456")
DEV_B = ("dev-b", "secret-b-789")


class Client:
    """A small synchronous wrapper over paho for the tests."""

    def __init__(self, address: BrokerAddress, client_id: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[object] = queue.Queue()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        configure_client(self.c, address)
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.address = address

    def connect(self, timeout_s: float = 5.0) -> object:
        """Connect; return the CONNACK reason code (raises on a TLS/socket failure)."""
        self.c.connect(self.address.host, self.address.port, keepalive=10)
        self.c.loop_start()
        return self.connack.get(timeout=timeout_s)

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(5.0)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5.0)
        assert info.is_published()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _ok(rc: object) -> bool:
    return not getattr(rc, "is_failure", rc != 0)


@pytest.fixture
def broker(tmp_path: Path):
    with MosquittoSupervisor(
        tmp_path / "broker",
        production=True,
        users=dict([PROC, DEV_A, DEV_B]),
        processor_user=PROC[0],
        supervise=False,
    ) as b:
        yield b


@pytest.fixture
def processor(broker: MosquittoSupervisor):
    sub = Client(broker.address, "test-proc")
    assert _ok(sub.connect())
    sub.subscribe("heartline/v1/+/+/frames")
    yield sub
    sub.close()


def _device(broker: MosquittoSupervisor, device_id: str) -> Client:
    dev = Client(broker.device_address(device_id), f"test-{device_id}")
    rc = dev.connect()
    assert _ok(rc), rc
    return dev


def test_acl_file_written(broker: MosquittoSupervisor) -> None:
    acl = broker.acl_path.read_text()
    assert "pattern write heartline/v1/+/%u/frames" in acl
    assert "pattern read heartline/v1/acks/%u" in acl
    assert "user heartline\ntopic readwrite heartline/#" in acl
    assert f"acl_file {broker.acl_path.as_posix()}" in broker.config_path.read_text()
    # the password file holds hashes, never the secrets
    pw = broker.password_path.read_text()
    assert DEV_A[1] not in pw and "dev-a:$7$" in pw


@needs_mosquitto
def test_device_publishes_own_topic(broker, processor) -> None:
    dev = _device(broker, DEV_A[0])
    try:
        topic = frames_topic(DEV_A[0], partitions=N_PART)
        dev.publish(topic, b"frame-a")
        assert processor.messages.get(timeout=3.0) == (topic, b"frame-a")
    finally:
        dev.close()


@needs_mosquitto
def test_device_cannot_write_other_device_topic(broker, processor) -> None:
    dev = _device(broker, DEV_A[0])
    try:
        forged = frames_topic(DEV_B[0], partitions=N_PART)
        dev.publish(forged, b"forged")  # PUBACKed, but dropped by the ACL
        with pytest.raises(queue.Empty):
            processor.messages.get(timeout=1.0)
        own = frames_topic(DEV_A[0], partitions=N_PART)
        dev.publish(own, b"control")
        assert processor.messages.get(timeout=3.0) == (own, b"control")
        assert processor.messages.empty()
    finally:
        dev.close()


@needs_mosquitto
def test_device_reads_only_its_own_acks(broker) -> None:
    a = _device(broker, DEV_A[0])
    proc = Client(broker.address, "test-proc-acks")
    assert _ok(proc.connect())
    try:
        a.subscribe("heartline/v1/acks/+")  # granted, but B's acks are filtered out on delivery
        proc.publish(acks_topic(DEV_B[0]), b"ack-b")
        with pytest.raises(queue.Empty):
            a.messages.get(timeout=1.0)
        proc.publish(acks_topic(DEV_A[0]), b"ack-a")
        assert a.messages.get(timeout=3.0) == (acks_topic(DEV_A[0]), b"ack-a")
    finally:
        a.close()
        proc.close()


@needs_mosquitto
def test_wrong_password_refused(broker) -> None:
    bad = Client(broker.address.with_credentials(DEV_A[0], "wrong"), "test-bad")
    try:
        rc = bad.connect()
        assert not _ok(rc)
        assert "authori" in str(rc).lower()
    finally:
        bad.close()
    anon = Client(broker.address.with_credentials(None, None), "test-anon")
    try:
        assert not _ok(anon.connect())
    finally:
        anon.close()


@needs_mosquitto
def test_set_users_adds_and_revokes_at_run_time(broker, processor) -> None:
    pid = broker.pid
    new = ("dev-c", "secret-c-000")
    early = Client(BrokerAddress(broker.host, broker.port, *new), "test-c-early")
    try:
        assert not _ok(early.connect())
    finally:
        early.close()
    broker.set_users({**broker.users, new[0]: new[1]})
    assert broker.pid == pid  # reloaded with SIGHUP, not restarted
    dev = _device(broker, new[0])
    try:
        topic = frames_topic(new[0], partitions=N_PART)
        dev.publish(topic, b"frame-c")
        assert processor.messages.get(timeout=3.0) == (topic, b"frame-c")
    finally:
        dev.close()
    users = dict(broker.users)
    del users[DEV_B[0]]
    broker.set_users(users)
    gone = Client(BrokerAddress(broker.host, broker.port, *DEV_B), "test-b-gone")
    try:
        assert not _ok(gone.connect())
    finally:
        gone.close()
    with pytest.raises(ValueError, match="processor_user"):
        broker.set_users({new[0]: new[1]})


def test_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        MosquittoSupervisor(tmp_path, tls_certfile=tmp_path / "x.pem")
    with pytest.raises(ValueError, match="bad user name"):
        MosquittoSupervisor(tmp_path, users={"a/b": "pw"})
    with pytest.raises(ValueError, match="processor_user"):
        MosquittoSupervisor(tmp_path, users={"a": "pw"}, processor_user="b")


def test_parse_mqtts() -> None:
    a = parse_broker_url("mqtts://u:p@127.0.0.1")
    assert (a.tls, a.port, a.username, a.password) == (True, 8883, "u", "p")
    assert a.url == "mqtts://127.0.0.1:8883"
    assert "p" not in repr(a).replace("port", "").replace("tls", "")  # password not in repr
    b = parse_broker_url("mqtt://127.0.0.1:1999", ca_certs="/etc/ca.pem")
    assert (b.tls, b.ca_certs, b.port) == (True, "/etc/ca.pem", 1999)
    assert not parse_broker_url("mqtt://127.0.0.1").tls
    with pytest.raises(ValueError, match="mqtt"):
        parse_broker_url("http://127.0.0.1")


def test_settings_tls_fields(tmp_path: Path) -> None:
    s = load_settings(state_dir=tmp_path)
    assert s.mqtt_tls_certfile is None and s.mqtt_tls_cafile is None
    with pytest.raises(ValueError, match="TLS_KEYFILE"):
        load_settings(state_dir=tmp_path, mqtt_tls_certfile=tmp_path / "c.pem")


# ---------------------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is not None:
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return cert, key
    crypto = pytest.importorskip("cryptography", reason="neither openssl nor cryptography")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    assert crypto
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(k, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@needs_mosquitto
def test_tls_publish_subscribe(tmp_path: Path, self_signed) -> None:
    cert, key = self_signed
    with MosquittoSupervisor(
        tmp_path / "broker",
        production=True,
        users=dict([PROC, DEV_A]),
        processor_user=PROC[0],
        tls_certfile=cert,
        tls_keyfile=key,
        supervise=False,
    ) as b:
        assert b.address.url == f"mqtts://127.0.0.1:{b.tls_port}"
        assert b.address.ca_certs == str(cert.resolve())
        url = f"mqtts://{PROC[0]}:{PROC[1]}@127.0.0.1:{b.tls_port}"
        sub = Client(parse_broker_url(url, ca_certs=cert), "tls-proc")
        assert _ok(sub.connect())
        dev = _device(b, DEV_A[0])
        try:
            assert dev.address.tls
            sub.subscribe("heartline/v1/+/+/frames")
            topic = frames_topic(DEV_A[0], partitions=N_PART)
            dev.publish(topic, b"over-tls")
            assert sub.messages.get(timeout=3.0) == (topic, b"over-tls")
        finally:
            dev.close()
            sub.close()

        # A plain MQTT client cannot talk to the TLS port.
        plain = Client(BrokerAddress("127.0.0.1", int(b.tls_port), *PROC), "tls-plain")
        try:
            with pytest.raises((OSError, queue.Empty)):
                plain.connect(timeout_s=2.0)
        finally:
            plain.close()


@needs_mosquitto
def test_live_system_production_per_device_credentials_over_tls(
    tmp_path: Path, self_signed, tiny_model_path, data_dir
) -> None:
    from heartline.ingestion.live import LiveSystem

    cert, key = self_signed
    settings = load_settings(
        state_dir=tmp_path / "state",
        environment="production",
        broker_password="a-real-processor-secret",
        mqtt_partitions=2,
        mqtt_tls_certfile=cert,
        mqtt_tls_keyfile=key,
    )
    with LiveSystem(
        settings,
        model=tiny_model_path,
        workers=1,
        patients=2,
        realtime=False,
        duration_s=10,
        data_dir=data_dir,
        unknown_devices="register",
    ) as live:
        assert live.broker is not None and live.address is not None
        assert live.address.tls and live.address.username == "heartline"
        assert set(live.device_secrets) == {"sim-0001", "sim-0002"}
        assert len(set(live.device_secrets.values())) == 2
        for pub in live.publishers:
            assert pub.address.tls
            assert pub.address.username == pub.device_id
            assert pub.address.password == live.device_secrets[pub.device_id]
        assert live.sim_done.wait(60)
        assert live.wait_drained(60), live.status()
        st = live.status()
        assert st.frames_stored == 20 and st.quarantined == 0
        assert st.broker_url.startswith("mqtts://")
