"""Shared CLI helpers: error reporting, progress bars, run directories."""

from __future__ import annotations

import functools
import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from heartline.errors import HeartlineError
from heartline.progress import err_console, progress, track

__all__ = [
    "console",
    "err_console",
    "handle_errors",
    "invoked_command",
    "missing_extra",
    "progress",
    "progress_steps",
    "resolve_beat_model",
    "setup_logging",
    "track",
]

console = Console()

#: Import name of an optional dependency -> the extra of ``pyproject.toml`` that installs it.
EXTRA_OF_MODULE: dict[str, str] = {
    **dict.fromkeys(
        ("torch", "onnx", "onnxscript", "optuna", "tomli_w", "captum", "opacus"), "train"
    ),
    **dict.fromkeys(
        (
            "fastapi",
            "starlette",
            "uvicorn",
            "paho",
            "sqlalchemy",
            "alembic",
            "psycopg",
            "pydantic_settings",
            "httpx",
            "fhir",
            "jwt",
            "argon2",
            "multipart",
        ),
        "service",
    ),
    "flwr": "federated",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The message for a missing optional dependency (``None`` if ``exc`` is not one).

    >>> missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    "this command needs PyTorch-side dependencies that are not installed (no module 'torch'): install heartline[train], e.g. pip install 'heartline[train]'"
    >>> missing_extra(ModuleNotFoundError("x", name="heartline.nope")) is None
    True
    """
    root = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(root)
    if extra is None:
        return None
    role = {"train": "PyTorch-side", "service": "service-side", "federated": "Flower"}[extra]
    return (
        f"this command needs {role} dependencies that are not installed (no module {root!r}): "
        f"install heartline[{extra}], e.g. pip install 'heartline[{extra}]'"
    )


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn Heartline errors into one red line and exit code 1 (no traceback); a missing
    optional dependency names the extra that installs it."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeartlineError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None
        except ModuleNotFoundError as exc:
            message = missing_extra(exc)
            if message is None:
                raise
            err_console.print(
                f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False
            )
            raise typer.Exit(1) from None

    return wrapper


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def resolve_beat_model(model: Path | None) -> Path:
    """``--model`` if given (it must exist), else the shipped ONNX beat classifier."""
    if model is not None:
        if not model.is_file():
            raise typer.BadParameter(f"no ONNX model at {model}", param_hint="--model")
        return model
    from heartline.edge.shipped import shipped_model_path

    try:
        return Path(shipped_model_path())
    except FileNotFoundError as exc:
        raise typer.BadParameter(
            f"no shipped model ({exc}); pass --model PATH.onnx", param_hint="--model"
        ) from None


def invoked_command() -> str:
    """The command line this process runs, as ``heartline ...`` (shell-quoted), for reports."""
    return "heartline " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@contextmanager
def progress_steps(name: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar named ``name`` for a long job; yields ``step(desc, done, total)``, the
    ``on_progress`` callback of the benchmarks."""
    with progress() as bar:
        task = bar.add_task(name, total=None)

        def step(desc: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{name}: {desc}")

        yield step
