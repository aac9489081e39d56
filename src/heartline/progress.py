"""Progress bars (rich, on stderr) for long library work: building beat sets, scoring records.

Library code shows progress through this module; the CLI re-exports it
(:mod:`heartline.cli.common`), so that nothing below the CLI imports :mod:`heartline.cli`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["err_console", "progress", "track"]

#: The console progress bars and CLI error lines are written to.
err_console = Console(stderr=True)
T = TypeVar("T")


def progress() -> Progress:
    """A rich progress bar with count, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def track(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr."""
    items = list(items) if total is None else items
    with progress() as bar:
        task = bar.add_task(description, total=total if total is not None else len(items))  # type: ignore[arg-type]
        for item in items:
            yield item
            bar.advance(task)
