"""The package's layers look down, with no import cycle (the contracts in
pyproject.toml, checked by import-linter; docs/architecture.md draws the map)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_layers_look_down_with_no_cycle_and_agents_apart_from_ingest():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


def test_the_architecture_page_names_every_module():
    """docs/architecture.md names each module: a top-level one anywhere, one of a
    package in the list that starts with the package's name."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    lists = {part.split("`", 1)[0]: part for part in page.split("\n`") if "/`" in part[:20]}
    package = ROOT / "spotify_stream"
    missing = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        if path.name == "__init__.py":
            continue
        where = page if len(parts) == 1 else lists.get(f"{parts[0]}/", "")
        if len(parts) > 2:  # a package inside a package: named in its parent's list
            where = where if f"`{parts[1]}/`" in where else ""
        if f"`{path.name}`" not in where:
            missing.append("/".join(parts))
    assert missing == []
