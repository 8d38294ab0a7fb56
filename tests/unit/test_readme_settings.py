"""README.md carries the table of settings exactly as fastcore.config generates it."""

from pathlib import Path

from fastcore.config import settings_markdown

README = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def test_readme_settings_table_is_generated():
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == START]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], "README needs one settings block"
    block = "".join(lines[starts[0] + 1:ends[0]])
    assert block == settings_markdown(), "regenerate with: python -m fastcore.config --markdown"
