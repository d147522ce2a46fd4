"""The layer rules, checked on the source: imports point down only (docs/architecture.md).

`loraforge/` (the domain library) imports no orchestration, execution, web or UI framework and none of the
client packages; the dashboard reaches data only through the API, so it imports no loraforge at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "loraforge": {
        "prefect",
        "ray",
        "fastapi",
        "starlette",
        "streamlit",
        "typer",
        "flows",
        "services",
        "ray_tasks",
    },
    "services/ui": {"loraforge", "flows", "ray_tasks", "prefect", "ray", "sqlalchemy"},
    "ray_tasks": {"flows", "services", "prefect", "fastapi", "streamlit"},
    "flows": {"services", "fastapi", "streamlit", "typer"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    offenders = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import ray.data\n    from prefect import flow\n    from . import x\n")
    assert imported_packages(module) == {"ray", "prefect"}
