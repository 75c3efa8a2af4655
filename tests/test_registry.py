"""The shared name -> implementation registry (molchannel.registry) and the import layering it allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from molchannel.registry import Registry

PACKAGE = Path(__file__).resolve().parents[1] / "molchannel"


def test_register_and_look_up() -> None:
    shapes: Registry[type] = Registry("shape")

    @shapes.register("square")
    class Square:
        pass

    assert Square.__name__ == "Square"  # the decorator hands the class back unchanged
    assert shapes["square"] is Square and shapes.lookup("square") is Square
    assert "square" in shapes and list(shapes) == ["square"] and len(shapes) == 1
    shapes.add("circle", int)
    assert shapes.names() == ("circle", "square")
    assert repr(shapes) == "Registry('shape': circle, square)"


def test_unknown_and_taken_names() -> None:
    shapes: Registry[type] = Registry("shape")
    shapes.add("square", int)
    with pytest.raises(ValueError, match=r"unknown shape 'cube'; choose one of \('square',\)"):
        shapes.lookup("cube")
    with pytest.raises(ValueError, match="unknown shape"):
        shapes.lookup(["square"])  # type: ignore[arg-type]  # an unhashable value from a config
    with pytest.raises(KeyError):
        shapes["cube"]
    assert shapes.add("square", int) is int  # the same entry again is fine
    with pytest.raises(ValueError, match="'square' is already registered"):
        shapes.add("square", float)
    with pytest.raises(TypeError, match="non-empty string"):
        shapes.add("", float)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _molchannel_imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(modules imported at module level, modules imported inside functions) from molchannel."""
    top, deferred = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("molchannel"):
            names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            (top if node in tree.body else deferred).update(names)
    return top, deferred


def test_chem_and_nn_import_without_cycles_or_deferred_imports() -> None:
    files = [p for layer in ("chem", "nn") for p in sorted((PACKAGE / layer).glob("*.py"))]
    files.append(PACKAGE / "registry.py")
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        top, deferred = _molchannel_imports(ast.parse(path.read_text()))
        assert not deferred, f"{name} imports {sorted(deferred)} inside a function"
        graph[name] = {m for m in top if m in modules and m != name and not name.startswith(m + ".")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
