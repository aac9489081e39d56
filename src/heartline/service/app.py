"""The FastAPI application factory (:func:`create_app`) and :func:`run_api` (uvicorn).

Routes (prefix ``/api/v1`` unless noted): see the report in ``docs`` or ``/openapi.json``.
The dashboard (static HTML/CSS/JS bundled in ``heartline/service/dashboard``) is served at
``/dashboard/``; ``/`` redirects there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from heartline.service.attributions import OcclusionAttributionProvider
from heartline.service.config import ServiceSettings, load_service_settings
from heartline.service.deps import TOKEN_URL, Database
from heartline.service.limits import BodySizeLimitMiddleware
from heartline.service.routes import (
    adaptation,
    alerts,
    auth,
    devices,
    health,
    ingest,
    patients,
    session,
    station,
    stream,
    users,
)
from heartline.service.routes import fhir as fhir_routes
from heartline.service.routes.explain import register_attribution_provider
from heartline.service.security import make_password_hasher

__all__ = ["DASHBOARD_DIR", "create_app", "finite_json", "run_api"]

log = logging.getLogger(__name__)

#: Folder of the bundled dashboard (package data).
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
API_PREFIX = "/api/v1"

#: Answers any route may give, documented on every operation of the spec.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed request (a body that is not valid JSON or form data)"},
    401: {"description": "not authenticated"},
    413: {"description": "request body larger than the limit (before authentication)"},
    503: {"description": "database busy or unreachable for now; retry after `Retry-After` s"},
}

#: ``Retry-After`` (seconds) of a 503 for a busy or unreachable database.
DB_RETRY_AFTER_S = 2

_DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def finite_json(value: Any) -> Any:
    """``value`` with every NaN/Infinity float replaced by its text (``"NaN"``, ``"Infinity"``).

    Validation errors echo the offending input; a JSON body holding ``NaN`` would otherwise make
    the 422 itself unencodable (strict JSON has no NaN) and turn it into a 500.

    >>> finite_json({"input": [float("nan"), 1.5, {"x": float("-inf")}]})
    {'input': ['NaN', 1.5, {'x': '-Infinity'}]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the Heartline API.

    Parameters
    ----------
    settings : ServiceSettings, optional
        Defaults to :func:`~heartline.service.config.load_service_settings` (environment).
        The database engine is created on first use, from ``settings``; tests may override
        :func:`heartline.service.deps.get_session_factory` instead.

    Returns
    -------
    fastapi.FastAPI
    """
    settings = settings if settings is not None else load_service_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.seed_demo_users:
            from heartline.service.seed import seed_demo
            from heartline.storage.engine import session_scope

            with session_scope(app.state.database.factory()) as session:
                creds = seed_demo(session, hasher=app.state.password_hasher)
            for c in creds.users:
                log.warning("demo user %s (%s) password %s", c.username, c.role, c.password)
        yield
        app.state.database.dispose()

    app = FastAPI(
        title="Heartline API",
        version="1",
        summary="IoT cardiac monitoring: patients, ECG, beats, vitals, alerts, FHIR R4 export.",
        lifespan=lifespan,
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN; Heartline loads
        # nothing from the internet at run time: /api/docs serves a vendored Swagger UI
        # (dashboard/vendor/swagger-ui, from the npm package swagger-ui-dist) over /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    register_attribution_provider(OcclusionAttributionProvider(), key="occlusion")
    app.state.database = Database(settings)
    app.state.password_hasher = make_password_hasher(settings)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        path = request.url.path
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if path.startswith(API_PREFIX) or path.startswith("/fhir"):
            response.headers.setdefault("Cache-Control", "no-store")
        if path.startswith("/dashboard"):
            response.headers.setdefault("Content-Security-Policy", _DASHBOARD_CSP)
        if settings.tls_certfile is not None:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):  # type: ignore[no-untyped-def]
        if request.url.path.startswith("/fhir"):
            return JSONResponse(
                fhir_routes.operation_outcome(exc.status_code, exc.detail),
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
                media_type=fhir_routes.FHIR_JSON,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, exc: OperationalError):  # type: ignore[no-untyped-def]
        # SQLite past its busy timeout ("database is locked") or a lost PostgreSQL connection:
        # the request did not happen; the client may retry (nothing half-written: the session's
        # transaction was rolled back)
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc.orig)
        headers = {"Retry-After": str(DB_RETRY_AFTER_S)}
        detail = "the database is busy or unreachable; retry shortly"
        if request.url.path.startswith("/fhir"):
            return JSONResponse(
                fhir_routes.operation_outcome(503, detail),
                status_code=503,
                headers=headers,
                media_type=fhir_routes.FHIR_JSON,
            )
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        errors = finite_json(jsonable_encoder(exc.errors()))
        if request.url.path.startswith("/fhir"):
            return JSONResponse(
                fhir_routes.operation_outcome(422, errors),
                status_code=422,
                media_type=fhir_routes.FHIR_JSON,
            )
        return JSONResponse({"detail": errors}, status_code=422)

    # Outermost (added last): bodies are bounded before any route, dependency or token check.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        path_limits={TOKEN_URL: settings.max_login_body_bytes},
    )

    app.include_router(health.router, responses=COMMON_RESPONSES)
    for module in (
        auth,
        users,
        patients,
        alerts,
        devices,
        ingest,
        session,
        station,
        stream,
        adaptation,
    ):
        app.include_router(module.router, prefix=API_PREFIX, responses=COMMON_RESPONSES)
    app.include_router(users.audit_router, prefix=API_PREFIX, responses=COMMON_RESPONSES)
    app.include_router(fhir_routes.router, responses=COMMON_RESPONSES)

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get("/api/docs", include_in_schema=False)
    def _api_docs() -> RedirectResponse:
        """Human-readable API documentation (vendored Swagger UI, no CDN)."""
        return RedirectResponse("/dashboard/docs/")

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
    return app


def run_api(
    settings: ServiceSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    app: FastAPI | None = None,
) -> None:
    """Serve ``app`` (default :func:`create_app`) with uvicorn (HTTPS when ``tls_certfile``/``tls_keyfile`` are set)."""
    import uvicorn

    if (
        not settings.is_development
        and settings.tls_certfile is None
        and host not in {"127.0.0.1", "localhost", "::1"}
    ):
        log.warning("serving plain HTTP on %s outside development: put a TLS proxy in front", host)
    uvicorn.run(
        app if app is not None else create_app(settings),
        host=host,
        port=port,
        ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        proxy_headers=False,
        server_header=False,
    )
