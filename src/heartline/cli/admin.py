"""``heartline admin``: account administration from the command line.

``heartline admin create-user --username alice --role admin`` creates the first production
admin (or any user) directly in the database, after migrating it. The password is read from a
hidden prompt (asked twice) or, with ``--password-stdin``, from the first line of standard
input; it is never taken from the command line, where other users of the machine could read it
in the process list or shell history::

    printf '%s\n' "$ADMIN_PASSWORD" | heartline admin create-user --username alice \
        --role admin --password-stdin --database-url postgresql+psycopg://heartline@db/heartline
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from heartline.cli.common import console, handle_errors
from heartline.cli.main import app
from heartline.errors import HeartlineError

admin_app = typer.Typer(help="Accounts: create users (the first admin).", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


class AdminError(HeartlineError):
    """An account could not be created (bad input, name taken, unknown patient)."""


def _read_password(*, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise AdminError("--password-stdin: standard input held no password line")
        return password
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@admin_app.command("create-user")
@handle_errors
def create_user(
    username: Annotated[str, typer.Option("--username", help="Login name (3-64 characters).")],
    role: Annotated[str, typer.Option("--role", help="admin, clinician or patient.")] = "admin",
    patient_id: Annotated[
        str | None, typer.Option("--patient-id", help="The patient's id (role patient only).")
    ] = None,
    full_name: Annotated[str | None, typer.Option("--full-name", help="Display name.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of standard input instead of a prompt.",
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: from the settings)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="State directory (default SQLite database)."),
    ] = None,
) -> None:
    """Create a user (the first production admin) with a password from a prompt or stdin."""
    from pydantic import ValidationError

    from heartline.cli.streaming import settings_overrides
    from heartline.service.config import load_service_settings
    from heartline.service.schemas import UserCreate
    from heartline.service.security import hash_password, make_password_hasher
    from heartline.storage import make_engine, make_session_factory, session_scope
    from heartline.storage import security_repository as srepo
    from heartline.storage.migrations import upgrade_database
    from heartline.storage.repository import StorageError

    password = _read_password(from_stdin=password_stdin)
    try:
        body = UserCreate(
            username=username,
            password=password,
            role=role,  # type: ignore[arg-type]
            patient_id=patient_id,
            full_name=full_name,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'user'}: {e['msg']}" for e in exc.errors()
        )
        raise AdminError(f"cannot create user {username!r}: {problems}") from None
    settings = load_service_settings(
        **settings_overrides(database_url=database_url, state_dir=state_dir)
    )
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            try:
                user = srepo.create_user(
                    session,
                    username=body.username,
                    password_hash=hash_password(make_password_hasher(settings), body.password),
                    role=body.role,
                    patient_id=body.patient_id,
                    full_name=body.full_name,
                )
            except (StorageError, ValueError) as exc:
                raise AdminError(f"cannot create user {username!r}: {exc}") from None
            user_id, user_role = user.id, user.role
    finally:
        engine.dispose()
    console.print(f"created {user_role} {body.username!r} (id {user_id})")
