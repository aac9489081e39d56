"""The git revision a benchmark report records: the commit of the code that ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_head"]


def git_head(*, short: bool = False) -> str:
    """``git rev-parse HEAD`` (``--short`` with ``short``) of the checkout holding this package.

    ``""`` where there is none (an installed package), or git is missing or hangs (5 s). Unlike
    :func:`heartline.training.rundir.git_revision` it does not mark a modified tree.
    """
    args = ["git", "rev-parse", *(("--short",) if short else ()), "HEAD"]
    try:
        out = subprocess.run(
            args,
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()
