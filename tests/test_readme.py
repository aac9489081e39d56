"""The README's Python example runs as written (its ``python`` code blocks as doctests)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_examples_run(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the example reads ../shared/data relative to the repository root
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    test = doctest.DocTestParser().get_doctest(
        "\n".join(blocks), {}, "README.md", str(ROOT / "README.md"), 0
    )
    assert len(test.examples) >= 5, "the README lost its Python example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0
