"""``python -m heartline.cli.main`` offers the same commands as the ``heartline`` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_module_entry_point_registers_the_optional_commands() -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "heartline.cli.main", "bench", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # ``stream`` lives in heartline.cli.streaming, attached at import time.
    assert "stream" in out.stdout
