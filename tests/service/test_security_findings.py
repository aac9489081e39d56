"""Security findings of issue 18 (service, API and accounts), one test per failure mode.

Each test reproduced its finding on the code before the fix (it failed there):

* reserved names: a device named like the broker's service account replaced its password;
* request bodies: a large body without a token was read in full before the 401;
* server errors: out-of-range dates and NaN/Infinity in JSON bodies answered 500;
* secrets: development signed tokens with ``changeme``; production accepted ``x`` and 32
  identical characters as secrets and ``http://*`` as a CORS origin;
* accounts: deactivated users were answered without an argon2 verification, a deleted user's
  token worked for the next user given the same id, spraying one password over many usernames
  was never slowed, and foreign alerts answered 403 where missing ones answered 404.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import delete

from heartline.ingestion.broker import MosquittoSupervisor
from heartline.service import create_app
from heartline.service.config import ServiceSettings, load_service_settings
from heartline.storage.security_tables import User

from .conftest import PASSWORD, make_settings

LOGIN = "/api/v1/login/access-token"
GOOD_SECRET = "kV3q-8ZpL1x_Rw7TnB0yHc5sJ2mDf9Ga4EuQ6"  # a real-looking 38-character secret


# ------------------------------------------------------------------------ 3. reserved names
@pytest.fixture
def broker_sink(tmp_path: Path):
    """A (not started) production broker holding the service account, wired as the API's sink."""
    broker = MosquittoSupervisor(
        tmp_path / "broker",
        production=True,
        users={"heartline": "the-service-password"},
        processor_user="heartline",
    )
    return broker, lambda device_id, secret: broker.set_users({**broker.users, device_id: secret})


@pytest.mark.parametrize("device_id", ["heartline", "Heartline", "HEARTLINE", "mosquitto"])
def test_device_named_like_service_account_refused(settings, world, broker_sink, device_id):
    broker, sink = broker_sink
    app = create_app(settings)
    app.state.device_credential_sink = sink
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/devices",
            json={"id": device_id, "patient_id": "p1"},
            headers=world.auth("admin"),
        )
    assert r.status_code == 409, r.text
    assert "reserved" in r.json()["detail"]
    assert broker.users == {"heartline": "the-service-password"}


def test_device_named_like_configured_service_account_refused(db_url, tmp_path):
    from .conftest import seed_world

    settings = make_settings(db_url, tmp_path, broker_username="proc-svc")
    world = seed_world(settings)
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/api/v1/devices",
            json={"id": "proc-svc", "patient_id": "p1"},
            headers=world.auth("admin"),
        )
    assert r.status_code == 409 and "proc-svc" in r.json()["detail"]


def test_device_id_differing_only_in_case_refused(client, world):
    r = client.post(
        "/api/v1/devices", json={"id": "D1", "patient_id": "p2"}, headers=world.auth("admin")
    )
    assert r.status_code == 409, r.text
    assert "'d1'" in r.json()["detail"]


def test_broker_refuses_to_change_service_account_password(broker_sink):
    broker, sink = broker_sink
    with pytest.raises(ValueError, match="service account"):
        sink("heartline", "attacker-chosen")
    assert broker.users == {"heartline": "the-service-password"}
    sink("dev-1", "device-secret")  # a device is still added
    assert broker.users["heartline"] == "the-service-password" and "dev-1" in broker.users


# ---------------------------------------------------------- 4. request body before authentication
async def _asgi_post(app, path: str, chunks, headers: list[tuple[bytes, bytes]]):
    """POST ``chunks`` (an iterator of bytes) to ``app``; returns (status, body, chunks read)."""
    read = 0
    sent: list[dict] = []
    it = iter(chunks)
    pending = next(it, None)

    async def receive():
        nonlocal read, pending
        if pending is None:
            return {"type": "http.disconnect"}
        chunk, pending = pending, next(it, None)
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "app": app,
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, read


MIB = 1024 * 1024


@pytest.mark.parametrize(
    "path",
    ["/api/v1/patients", "/api/v1/users", "/api/v1/devices", "/fhir/Patient/p1", "/dashboard/"],
)
def test_chunked_large_body_without_token_413_before_reading_it(settings, path):
    import anyio

    app = create_app(settings)
    chunks = (b"{" + b" " * (MIB - 1) for _ in range(64))  # 64 MiB, no Content-Length
    status, body, read = anyio.run(
        _asgi_post, app, path, chunks, [(b"content-type", b"application/json")]
    )
    assert status == 413, body
    assert "request body larger than" in json.loads(body)["detail"]
    limit = settings.max_request_body_bytes
    assert read <= limit // MIB + 1, f"read {read} MiB of 64 before refusing"


def test_declared_large_body_413_without_reading(settings):
    import anyio

    app = create_app(settings)
    status, _body, read = anyio.run(
        _asgi_post,
        app,
        "/api/v1/patients",
        [b"{}"],
        [(b"content-type", b"application/json"), (b"content-length", b"209715200")],
    )
    assert status == 413 and read == 0


def test_login_has_a_smaller_body_cap(settings):
    import anyio

    app = create_app(settings)
    chunks = [b"username=admin&password=" + b"a" * (64 * 1024)]
    status, _body, _read = anyio.run(
        _asgi_post,
        app,
        LOGIN,
        chunks,
        [(b"content-type", b"application/x-www-form-urlencoded")],
    )
    assert status == 413


def test_ingestion_keeps_its_own_smaller_cap(client, world):
    import base64

    creds = base64.b64encode(f"d1:{world.device_secrets['d1']}".encode()).decode()
    r = client.post(
        "/api/v1/ingest/frames",
        content=b'{"device_id": "d1", "pad": "' + b"x" * (700 * 1024) + b'"}',
        headers={"Authorization": f"Basic {creds}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "oversized", r.text


def test_200_mb_body_over_a_socket_refused_quickly(settings):
    """A real uvicorn server answers 413 after reading at most the limit of a 200 MB upload."""
    import uvicorn

    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"POST /api/v1/patients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            t0 = time.monotonic()
            sent = 0
            chunk = b"%x\r\n" % MIB + b" " * MIB + b"\r\n"
            answer = b""
            conn.settimeout(0.05)
            while sent < 200 and not answer:
                try:
                    conn.sendall(chunk)
                    sent += 1
                except OSError:
                    break  # the server closed the connection after answering
                try:
                    answer = conn.recv(65536)
                except TimeoutError:
                    pass
            conn.settimeout(5)
            while b"\r\n\r\n" not in answer:
                more = conn.recv(65536)
                if not more:
                    break
                answer += more
            elapsed = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 50, f"{sent} MiB sent before the answer"
        assert elapsed < 30  # generous: the machine is shared; typical well under a second
    finally:
        server.should_exit = True
        thread.join(10)


# ------------------------------------------------------------------- 6. no server errors from input
BAD_DATES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00"]
WINDOWED = [
    "/api/v1/patients/p1/ecg",
    "/api/v1/patients/p1/vitals",
    "/api/v1/patients/p1/beats",
    "/api/v1/patients/p1/summary",
    "/api/v1/patients/p1/alerts",
    "/fhir/Patient/p1/$everything",
    "/fhir/Bundle?patient=p1",
]


@pytest.mark.parametrize("param", ["start", "end"])
@pytest.mark.parametrize("value", BAD_DATES)
@pytest.mark.parametrize("url", WINDOWED)
def test_out_of_range_window_dates_422(client, world, url, param, value):
    sep = "&" if "?" in url else "?"
    r = client.get(f"{url}{sep}{param}={value.replace('+', '%2B')}", headers=world.auth("admin"))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "date",
    [
        "9999-12-31T23:59:59Z",
        "ge9999-12-31T23:59:59Z",
        "le9999-12-31",
        "gt9999-12-31",
        "9999-12-31",
        "0001-01-01",
        "lt0001-01-01T00:00:00Z",
        "ge0001-01-01T00:00:00%2B05:00",
    ],
)
@pytest.mark.parametrize("resource", ["Observation", "DiagnosticReport"])
def test_out_of_range_fhir_dates_422(client, world, resource, date):
    r = client.get(f"/fhir/{resource}?patient=p1&date={date}", headers=world.auth("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v1/patients", '{"id": %s}'),
        ("/api/v1/patients", '{"id": "p9", "display_name": %s}'),
        ("/api/v1/devices", '{"id": "d9", "patient_id": "p1", "kind": %s}'),
        ("/api/v1/users", '{"username": "u-nan", "password": %s, "role": "admin"}'),
        ("/api/v1/patients", "[%s]"),
        ("/api/v1/patients", "%s"),
    ],
)
def test_non_finite_json_body_422(client, world, path, template, token):
    r = client.post(
        path,
        content=(template % token).encode(),
        headers={**world.auth("admin"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in the error response"))


# ------------------------------------------------------------------------------------ 7. secrets
def test_dev_jwt_secret_random_per_state_dir_and_reused(tmp_path, caplog, capsys):
    a1 = load_service_settings(environment="development", state_dir=tmp_path / "a")
    a2 = load_service_settings(environment="development", state_dir=tmp_path / "a")
    b = load_service_settings(environment="development", state_dir=tmp_path / "b")
    secret = a1.jwt_secret.get_secret_value()
    assert secret not in {"changeme", ""} and len(secret) >= 32
    assert a2.jwt_secret.get_secret_value() == secret, "reused with the same state directory"
    assert b.jwt_secret.get_secret_value() != secret, "one per state directory"
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    out = capsys.readouterr()
    assert secret not in out.out + out.err + caplog.text, "the secret is printed nowhere"


def test_dev_token_forged_with_changeme_refused(tmp_path, db_url):
    from .conftest import seed_world

    settings = ServiceSettings(
        environment="development",
        state_dir=tmp_path,
        database_url=db_url,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
    )
    world = seed_world(settings)
    forged = jwt.encode(
        {
            "sub": str(world.user_ids["admin"]),
            "role": "admin",
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
            "jti": "x",
            "typ": "access",
        },
        "changeme",
        algorithm="HS256",
    )
    with TestClient(create_app(settings)) as client:
        assert (
            client.get(
                "/api/v1/patients", headers={"Authorization": f"Bearer {forged}"}
            ).status_code
            == 401
        )
        assert client.get("/api/v1/patients", headers=world.auth("admin")).status_code == 200


def test_explicit_dev_secret_is_kept(tmp_path):
    s = load_service_settings(environment="development", state_dir=tmp_path, jwt_secret=GOOD_SECRET)
    assert s.jwt_secret.get_secret_value() == GOOD_SECRET
    assert not any(tmp_path.iterdir())


def _prod(tmp_path, **kw):
    values = dict(
        environment="production",
        state_dir=tmp_path,
        jwt_secret=GOOD_SECRET,
        broker_password="Pr0cessor-pass-9Xq",
    )
    values.update(kw)
    return ServiceSettings(**values)


def test_production_accepts_real_secrets(tmp_path):
    assert _prod(tmp_path).jwt_secret.get_secret_value() == GOOD_SECRET


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("broker_password", "x"),
        ("broker_password", "aaaaaaaaaaaaaaaaaaaaaaaa"),
        ("jwt_secret", "a" * 32),
        ("jwt_secret", "ab" * 20),
        ("jwt_secret", "0123456789" * 4),
    ],
)
def test_production_refuses_low_entropy_secrets(tmp_path, field, value):
    with pytest.raises(ValidationError, match=f"HEARTLINE_{field.upper()}.*entropy"):
        _prod(tmp_path, **{field: value})


@pytest.mark.parametrize(
    "origin", ["*", "http://*", "https://*", "https://*.example.org", "null", "http://*:8080"]
)
def test_production_refuses_wildcard_cors(tmp_path, origin):
    with pytest.raises(ValidationError, match="cors"):
        _prod(tmp_path, cors_origins=["https://clinic.example.org", origin])


# ----------------------------------------------------------------------------------- 8. accounts
class _CountingHasher:
    """Wraps the app's argon2 hasher and counts verifications."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.verifies = 0

    def verify(self, *args, **kwargs):
        self.verifies += 1
        return self.inner.verify(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("case", "username", "password"),
    [
        ("unknown user", "nobody-here", PASSWORD),
        ("wrong password", "clin1", "wrong password!!"),
        ("deactivated user", "clin2", PASSWORD),
        ("deactivated user, wrong password", "clin2", "wrong password!!"),
    ],
)
def test_login_always_runs_argon2(settings, world, case, username, password):
    with world.factory() as s:
        s.get(User, world.user_ids["clin2"]).is_active = False
        s.commit()
    app = create_app(settings)
    counting = _CountingHasher(app.state.password_hasher)
    app.state.password_hasher = counting
    with TestClient(app) as client:
        r = client.post(LOGIN, data={"username": username, "password": password})
    assert r.status_code == 401, (case, r.text)
    assert r.json()["detail"] == "incorrect username or password"
    assert counting.verifies == 1, f"{case}: {counting.verifies} argon2 verifications"


def test_deleted_users_token_refused_for_new_user_with_same_id(client, world):
    admin = world.auth("admin")
    body = {"username": "temp-clin", "password": "a long password 1", "role": "clinician"}
    old = client.post("/api/v1/users", json=body, headers=admin).json()
    token = client.post(LOGIN, data={"username": "temp-clin", "password": body["password"]})
    old_auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert client.get("/api/v1/users/me", headers=old_auth).status_code == 200
    with world.factory() as s:
        s.execute(delete(User).where(User.id == old["id"]))
        s.commit()
    new = client.post(
        "/api/v1/users",
        json={"username": "new-admin", "password": "another long pw 2", "role": "admin"},
        headers=admin,
    ).json()
    assert new["id"] == old["id"], "precondition: SQLite reuses the id"
    r = client.get("/api/v1/users/me", headers=old_auth)
    assert r.status_code == 401, r.text
    assert client.get("/api/v1/users", headers=old_auth).status_code == 401


def test_token_without_per_user_key_refused(client, world):
    claims = jwt.decode(
        world.tokens["admin"], options={"verify_signature": False}, algorithms=["HS256"]
    )
    claims.pop("uid", None)
    bare = jwt.encode(claims, world.settings.jwt_secret.get_secret_value(), algorithm="HS256")
    assert (
        client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {bare}"}).status_code
        == 401
    )


def test_password_spraying_from_one_address_is_slowed(db_url, tmp_path):
    from .conftest import seed_world

    settings = make_settings(db_url, tmp_path, login_max_failures_per_ip=10)
    seed_world(settings)
    with TestClient(create_app(settings)) as client:
        codes = [
            client.post(LOGIN, data={"username": f"user{i}", "password": "Spring2026!"}).status_code
            for i in range(15)
        ]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}, codes
        # the limit holds for real users too, from that address
        assert (
            client.post(LOGIN, data={"username": "admin", "password": PASSWORD}).status_code == 429
        )


def test_password_spraying_from_many_addresses_hits_the_global_limit(db_url, tmp_path):
    from .conftest import seed_world

    settings = make_settings(db_url, tmp_path, login_max_failures_global=12)
    seed_world(settings)
    app = create_app(settings)
    codes = []
    for i in range(16):
        with TestClient(app, client=(f"10.0.{i}.1", 40000)) as c:
            codes.append(
                c.post(LOGIN, data={"username": f"user{i}", "password": "Spring2026!"}).status_code
            )
    assert codes[:12] == [401] * 12 and set(codes[12:]) == {429}, codes
    r = TestClient(app, client=("10.9.9.9", 40000)).post(
        LOGIN, data={"username": "nobody", "password": "x"}
    )
    assert r.status_code == 429 and "Retry-After" in r.headers


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/explanation"), ("POST", "/acknowledge")]
)
def test_foreign_and_missing_alerts_answer_the_same_404(client, world, method, suffix):
    foreign = world.alert_ids["p2"]
    missing = 10**9
    a = client.request(method, f"/api/v1/alerts/{foreign}{suffix}", headers=world.auth("clin1"))
    b = client.request(method, f"/api/v1/alerts/{missing}{suffix}", headers=world.auth("clin1"))
    assert a.status_code == b.status_code == 404, (a.text, b.text)
    assert a.json() == {"detail": "alert not found"} == b.json()
