"""The import contract: the layout shows the architecture, and the imports keep to it.

Every ``import`` in featx counts, including those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency. The layers, lowest first:

    core <- cache <- extraction (stage one), fitting (stage two) <- reporting <- runner, deploy <- cluster <- cli

A module may import its own subpackage and any lower layer, never a higher one nor a
sibling on its own layer (stage one and stage two do not know each other). The module
graph has no cycle. timm stays in stage one, and torch in stage one and stage two's torch
solvers; stage two never takes a Dask client.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "featx"

#: subpackage -> layer; a module may import only layers below its own (and its own subpackage)
LAYERS = {
    "core": 0,
    "_version": 0,
    "cache": 1,
    "extraction": 2,
    "fitting": 2,
    "reporting": 3,
    "runner": 4,
    "deploy": 4,
    "cluster": 5,
    "cli": 6,
}
#: the package facade (``featx/__init__.py``, ``__main__``) sits above everything
FACADE = 7
#: outside stage one, the only modules that may import torch (inside their functions)
TORCH_MODULES = ("featx.core.devices", "featx.fitting.accelerated", "featx.fitting.solvers.linear", "featx.fitting.solvers.neighbors")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with the line, wherever the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES]
            if len(submodules) < len(node.names):  # names defined by the module itself
                yield node.module, node.lineno
            for submodule in submodules:  # ``from featx.core import paths``: the submodule is the dependency
                yield submodule, node.lineno


def layer(name: str) -> tuple[str, int]:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "featx", FACADE
    return parts[1], LAYERS[parts[1]]


def graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in imports_of(path) if target in MODULES and target != name} for name, path in MODULES.items()}


def test_every_subpackage_has_a_layer_and_says_what_it_owns() -> None:
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(LAYERS), f"subpackages without a layer: {subpackages - set(LAYERS)}"
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Import rule" in doc or name == "cli", f"featx/{name}/__init__.py must say what it owns and what it may import"


def test_dependencies_point_down_only() -> None:
    breaches = []
    for name, path in MODULES.items():
        home, level = layer(name)
        for target, line in imports_of(path):
            if not target.startswith("featx.") or (target not in MODULES and target.split(".")[1] not in LAYERS):
                continue
            other, other_level = layer(target)
            if other != home and other_level >= level:
                breaches.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({other}, layer {other_level} >= {home}, layer {level})")
    assert not breaches, "layer breaches:\n" + "\n".join(breaches)


def test_no_import_cycle_lazy_imports_included() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target) :] + [target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_torch_stays_in_stage_one_and_the_torch_solvers() -> None:
    """timm only in stage one; torch there, in device resolution and in stage two's torch
    solvers (imported when they run): the cache, the report, the runner and the rest of
    stage two never import it, and ``--solver sklearn`` loads no torch at all."""
    found = []
    for name, path in MODULES.items():
        home = layer(name)[0]
        for target, line in imports_of(path):
            package = target.split(".")[0]
            if package in ("timm", "torchvision") and home != "extraction":
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            if package == "torch" and home != "extraction" and name not in TORCH_MODULES:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not found, "\n".join(found)


def test_stage_two_never_takes_a_scheduler_or_client() -> None:
    found = []
    for name, path in MODULES.items():
        if layer(name)[0] not in ("fitting", "extraction", "cache", "reporting", "runner"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({a.arg})" for a in arguments if a.arg in ("client", "scheduler")
                ]
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in ("dask", "distributed")
                ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package", sorted(n for n, p in MODULES.items() if p.name == "__init__.py"))
def test_exported_names_are_never_shadowed_by_a_submodule(package: str) -> None:
    """``featx.runner.demo`` must stay the function: a submodule of the same name would
    replace the package attribute as soon as it is imported."""
    module = importlib.import_module(package)
    submodules = {name.rpartition(".")[2] for name in MODULES if name.rpartition(".")[0] == package}
    assert not (set(getattr(module, "__all__", ())) & submodules)
