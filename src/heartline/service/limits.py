"""Request-body size limit as pure ASGI middleware, enforced before any route or authentication.

:class:`BodySizeLimitMiddleware` answers **413** when a request declares a ``Content-Length``
above the limit (without reading a byte of it). Otherwise it reads the body itself, counting
bytes as they stream in, before the application runs: a chunked upload without
``Content-Length`` is refused as soon as it passes the limit, and only a body within the limit
is handed on (in one piece) to the routes, their dependencies and authentication. Memory per
request stays below the limit whatever the client sends, and every route answers the same 413
whether it would have read the body or not. The 413 carries ``Connection: close``, so the
server stops reading the rest of the upload.

Paths may carry their own, smaller limits (``path_limits``: login's form needs a few hundred
bytes). Starlette's ``BaseHTTPMiddleware`` is not used: it buffers and cannot stop a stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["BodySizeLimitMiddleware"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than ``max_body_bytes`` with HTTP 413.

    Parameters
    ----------
    app : ASGI application
        The wrapped application.
    max_body_bytes : int
        Limit of every HTTP request body, in bytes.
    path_limits : mapping of str to int, optional
        Smaller limits of exact paths (``{"/api/v1/login/access-token": 16384}``).

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=1024 * 1024)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be > 0, got {max_body_bytes}")
        for path, limit in (path_limits or {}).items():
            if limit <= 0:
                raise ValueError(f"path_limits[{path!r}] must be > 0, got {limit}")
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.path_limits = dict(path_limits or {})

    def limit_for(self, path: str) -> int:
        """The body limit of ``path`` in bytes."""
        return min(self.path_limits.get(path, self.max_body_bytes), self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info(
                "413: %s declares a %d-byte body (limit %d)", scope.get("path"), declared, limit
            )
            await _send_413(send, limit)
            return

        # Read (at most ``limit`` bytes of) the body before the application runs, so that no
        # route, dependency or authentication step sees a larger one, whether it would read
        # the body or not; memory per request stays below ``limit``.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body: nothing to answer
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                log.info("413: %s body passed %d bytes", scope.get("path"), limit)
                await _send_413(send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # later calls wait for the disconnect, as usual

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"request body larger than {limit} bytes; send a smaller body"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
