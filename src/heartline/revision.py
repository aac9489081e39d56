"""The git revision a run or report records: the commit of the code that ran.

One implementation for benchmark reports (:mod:`heartline.bench`), training run directories
(:func:`heartline.training.rundir.git_revision`) and shipped model specs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_head"]


def _git(args: list[str], cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def git_head(
    *,
    short: bool = False,
    mark_dirty: bool = False,
    default: str = "",
    path: str | Path | None = None,
) -> str:
    """``git rev-parse HEAD`` of the checkout holding this package (or ``path``).

    Parameters
    ----------
    short : bool
        ``git rev-parse --short``.
    mark_dirty : bool
        Append ``"+dirty"`` when tracked files are modified.
    default : str
        What to return where there is no checkout (an installed package), or git is missing,
        fails or hangs (5 s).
    path : path-like, optional
        A folder inside the checkout (default: this package's).
    """
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        rev = _git(["rev-parse", *(("--short",) if short else ()), "HEAD"], cwd)
        if rev and mark_dirty and _git(["status", "--porcelain", "--untracked-files=no"], cwd):
            rev += "+dirty"
    except (OSError, subprocess.SubprocessError):
        return default
    return rev or default
