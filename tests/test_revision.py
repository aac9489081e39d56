"""``heartline.revision.git_head``: the commit a run or benchmark report records."""

from __future__ import annotations

import re
import subprocess

import pytest

from heartline.revision import git_head


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


def test_default_and_dirty_marker(monkeypatch, tmp_path) -> None:
    """Training run directories record ``"unknown"`` outside a checkout and mark a modified tree."""
    from heartline.training.rundir import git_revision

    assert git_head(default="unknown", path=tmp_path) == "unknown"  # no repository there
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    (repo / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-qm", "one")
    clean = git_revision(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", clean)
    (repo / "f.txt").write_text("b")
    assert git_revision(repo) == clean + "+dirty"
    assert git_head(path=repo) == clean  # benchmark reports: no marker
