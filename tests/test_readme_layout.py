"""README's Layout table lists every top-level package, and every module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def layout_rows() -> dict[str, str]:
    text = (PROJECT / "README.md").read_text()
    table = text.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w.]+)/` \|(.*)$", table, re.M)
    return dict(rows)


def test_every_package_is_listed():
    rows = layout_rows()
    packages = {p.parent.name for p in PROJECT.glob("*/__init__.py")}
    assert packages - {"tests"} <= set(rows), sorted(packages - set(rows))
    assert {"tests", "docs"} <= set(rows)
    for folder in rows:
        assert (PROJECT / folder).is_dir(), folder


def test_every_named_module_exists():
    """Names in the "key modules" column are relative to the folder; after "; `sub/`:"
    relative to that subfolder."""
    for folder, row in layout_rows().items():
        key = row.rsplit("|", 2)[-2]
        for part in key.split(";"):
            m = re.match(r"\s*`(\w+)/`:(.*)$", part)
            base, names = (PROJECT / folder / m.group(1), m.group(2)) if m else (
                PROJECT / folder, part)
            for name in re.findall(r"`(\w+\.py|\w+/)`", names):
                assert (base / name).exists(), f"README Layout names {base / name}: absent"
