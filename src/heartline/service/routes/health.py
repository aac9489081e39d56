"""``/health`` (the process answers) and ``/ready`` (the database answers)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from heartline.service.deps import get_session_factory

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness: always ``{"status": "ok"}`` while the process serves requests."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "database unreachable"}})
def ready(factory: Annotated[sessionmaker[Session], Depends(get_session_factory)]) -> JSONResponse:
    """Readiness: 200 when ``SELECT 1`` succeeds on the database, 503 otherwise."""
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness check failed: %s", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "reachable"})
