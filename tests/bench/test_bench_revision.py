"""``heartline.bench.revision.git_head``: the commit a benchmark report records."""

from __future__ import annotations

import re
import subprocess

import pytest

from heartline.bench.revision import git_head


def test_git_head_is_the_checkout_commit_full_or_short() -> None:
    full = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not full:
        pytest.skip("not run from a git checkout")
    assert git_head() == full and re.fullmatch(r"[0-9a-f]{40}", full)
    short = git_head(short=True)
    assert 7 <= len(short) < 40 and full.startswith(short)


@pytest.mark.parametrize("error", [OSError("no git"), subprocess.TimeoutExpired("git", 5)])
def test_git_head_is_empty_without_git(monkeypatch, error: Exception) -> None:
    def run(*args, **kwargs):
        raise error

    monkeypatch.setattr(subprocess, "run", run)
    assert git_head() == "" and git_head(short=True) == ""
