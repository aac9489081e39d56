"""``get_session``: one session per request, committed on return, rolled back on error."""

from __future__ import annotations

import pytest

from heartline.service.deps import get_session


class _Session:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def commit(self) -> None:
        self.calls.append("commit")

    def rollback(self) -> None:
        self.calls.append("rollback")

    def close(self) -> None:
        self.calls.append("close")


def test_get_session_commits_then_closes_when_the_route_returns() -> None:
    session = _Session()
    gen = get_session(lambda: session)  # type: ignore[arg-type]
    assert next(gen) is session
    with pytest.raises(StopIteration):
        next(gen)
    assert session.calls == ["commit", "close"]


@pytest.mark.parametrize("exc", [ValueError("route failed"), GeneratorExit()])
def test_get_session_rolls_back_then_closes_on_error(exc: BaseException) -> None:
    session = _Session()
    gen = get_session(lambda: session)  # type: ignore[arg-type]
    next(gen)
    with pytest.raises(type(exc)):
        gen.throw(exc)
    assert session.calls == ["rollback", "close"]
