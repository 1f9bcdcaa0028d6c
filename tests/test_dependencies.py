"""Every module the package imports is installed by ``pip install spotify-stream`` alone:
the runtime requirements and theirs, not the dev extra (a worker on EC2, a Glue job and
a user's ``pip install`` have no dev extra)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

PACKAGE = Path(__file__).parents[1] / "spotify_stream"


def runtime_closure() -> set[str]:
    """Normalized names of spotify-stream's runtime requirements, transitively."""
    seen: set[str] = set()
    todo = ["spotify-stream"]
    while todo:
        name = todo.pop()
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra's, or another platform's
            dependency = normalized(requirement.name)
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> set[str]:
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"spotify_stream"}


def test_every_imported_module_is_a_runtime_dependency():
    providers = packages_distributions()
    closure = runtime_closure()
    missing = {
        module: providers.get(module)
        for module in imported_modules()
        if not {normalized(d) for d in providers.get(module, [])} & closure
    }
    assert not missing, f"imported, but not installed by the runtime requirements: {missing}"
