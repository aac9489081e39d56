"""Helpers shared by the routers (``heartline.service.routes._common``)."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from heartline.service.routes._common import authorize_or_hide, not_found
from heartline.storage.security_tables import User


def _user(role: str, patient_id: str | None = None) -> User:
    return User(id=1, username=role, password_hash="x", role=role, patient_id=patient_id)


@pytest.mark.parametrize(
    ("role", "own"), [("admin", None), ("patient", "p-1")], ids=["admin", "own-patient"]
)
def test_authorize_or_hide_lets_the_allowed_through(role: str, own: str | None) -> None:
    # admins and a patient's own user need no database lookup
    authorize_or_hide(None, user=_user(role, own), patient_id="p-1", hidden=not_found("alert"))  # type: ignore[arg-type]


def test_authorize_or_hide_answers_a_refusal_with_the_hidden_404() -> None:
    hidden = not_found("patient")
    with pytest.raises(HTTPException) as err:
        authorize_or_hide(None, user=_user("patient", "p-2"), patient_id="p-1", hidden=hidden)  # type: ignore[arg-type]
    assert err.value is hidden
    assert (err.value.status_code, err.value.detail) == (404, "patient not found")
    assert err.value.__cause__ is None and err.value.__suppress_context__  # the 403 is not chained
