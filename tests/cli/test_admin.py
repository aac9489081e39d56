"""`heartline admin create-user`: the first production admin, password never on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from heartline.cli.main import app
from heartline.service import create_app
from heartline.service.config import ServiceSettings

PRODUCTION = {
    "HEARTLINE_ENVIRONMENT": "production",
    "HEARTLINE_JWT_SECRET": "kV3q-8ZpL1x_Rw7TnB0yHc5sJ2mDf9Ga4EuQ6-Zt",
    "HEARTLINE_BROKER_PASSWORD": "Pr0cessor-pass-9Xq",
    "HEARTLINE_ARGON2_TIME_COST": "1",
    "HEARTLINE_ARGON2_MEMORY_KIB": "1024",
    "HEARTLINE_ARGON2_PARALLELISM": "1",
}
PASSWORD = "a long admin password 7"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in PRODUCTION.items():
        monkeypatch.setenv(k, v)
    return f"sqlite:///{tmp_path / 'prod.db'}"


def _login(db: str, tmp_path: Path, username: str, password: str):
    settings = ServiceSettings(state_dir=tmp_path, database_url=db)
    with TestClient(create_app(settings)) as client:
        return client.post(
            "/api/v1/login/access-token", data={"username": username, "password": password}
        )


def test_create_first_admin_from_stdin_then_login(db, tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "admin",
            "create-user",
            "--username",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
            "--database-url",
            db,
        ],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    assert "created admin 'alice'" in r.output and PASSWORD not in r.output
    login = _login(db, tmp_path, "alice", PASSWORD)
    assert login.status_code == 200 and login.json()["role"] == "admin"


def test_create_user_from_prompt_asks_twice(db, tmp_path):
    r = CliRunner().invoke(
        app,
        ["admin", "create-user", "--username", "bob", "--role", "clinician", "--database-url", db],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    assert _login(db, tmp_path, "bob", PASSWORD).json()["role"] == "clinician"


def test_password_is_never_an_option(db):
    r = CliRunner().invoke(
        app,
        ["admin", "create-user", "--username", "eve", "--password", PASSWORD, "--database-url", db],
    )
    assert r.exit_code == 2 and "No such option" in r.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--username", "carol"], "short\n", "password"),
        (["--username", "ca"], PASSWORD + "\n", "username"),
        (["--username", "dave", "--role", "root"], PASSWORD + "\n", "role"),
        (["--username", "pat", "--role", "patient"], PASSWORD + "\n", "patient_id"),
        (
            ["--username", "pat", "--role", "patient", "--patient-id", "nope"],
            PASSWORD + "\n",
            "not registered",
        ),
        (["--username", "erin"], "\n", "no password"),
    ],
)
def test_bad_input_is_one_clear_error(db, args, stdin, message):
    r = CliRunner().invoke(
        app, ["admin", "create-user", *args, "--password-stdin", "--database-url", db], input=stdin
    )
    assert r.exit_code == 1, r.output
    assert "error:" in r.output and message in r.output


def test_username_taken(db):
    args = ["admin", "create-user", "--username", "alice", "--password-stdin", "--database-url", db]
    assert CliRunner().invoke(app, args, input=PASSWORD + "\n").exit_code == 0
    r = CliRunner().invoke(app, args, input="another long password\n")
    assert r.exit_code == 1 and "taken" in r.output
