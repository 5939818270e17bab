"""The package's import graph, read from the source with ``ast`` (nothing is imported).

Every ``import tinkerx...`` / ``from tinkerx... import ...`` / relative import counts, at module
level and inside functions alike; ``from pkg import name`` counts as importing ``pkg.name`` when
that is a module, else ``pkg``. The rules:

- Layers: nothing under the lower packages (backends, runs, data, rewards, methods, eval, models, judges)
  imports a front door (mcp, serve, app, cli, lifecycle, driver) or an entry point.
- Entry points (``__main__`` modules and modules with ``if __name__ == "__main__":``) are imported
  by no module, except that a command may share code with another command of its own package
  (``plot_compare`` draws with ``plots``); a ``__main__`` module is imported by none.
- No cycles: none between modules among module-level imports, none between modules among all
  imports (a function-level import hides a circle, it does not remove it), and none between
  packages (each subpackage of tinkerx one node, each top-level module its own node), all imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "tinkerx"
LOWER = ("backends", "runs", "data", "rewards", "methods", "eval", "models", "envs", "judges")
FRONT_DOORS = ("tinkerx.mcp", "tinkerx.serve", "tinkerx.app", "tinkerx.cli", "tinkerx.lifecycle", "tinkerx.driver")


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str) -> str | None:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@lru_cache(maxsize=1)
def imports() -> dict[tuple[str, str], bool]:
    """(importer, imported) -> True when at least one of its imports runs at module level."""
    edges: dict[tuple[str, str], bool] = {}

    def add(importer: str, name: str, module_level: bool) -> None:
        target = _resolve(name)
        if target is not None and target != importer:
            edges[(importer, target)] = edges.get((importer, target), False) or module_level

    for name, path in modules().items():
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, module_level: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inside = module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        if alias.name.split(".")[0] == "tinkerx":
                            add(name, alias.name, module_level)
                elif isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = name.split(".") if is_package else name.split(".")[:-1]
                        base = base[: len(base) - child.level + 1]
                        source = ".".join(base + ([child.module] if child.module else []))
                    else:
                        source = child.module or ""
                    if source.split(".")[0] == "tinkerx":
                        for alias in child.names:
                            add(name, f"{source}.{alias.name}", module_level)
                visit(child, inside)

        visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return edges


def entry_points() -> set[str]:
    return {
        name for name, path in modules().items()
        if name.endswith("__main__") or 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
    }  # fmt: skip


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def _is(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted({n for e in edges for n in e}):
        if v not in index:
            visit(v)
    return found


def package_edges() -> set[tuple[str, str]]:
    return {(package_of(a), package_of(b)) for a, b in imports() if package_of(a) != package_of(b)}


def layers() -> list[list[str]]:
    """Packages by height: layer 0 imports no other package, layer n only packages below n."""
    edges, done, result = package_edges(), set(), []
    nodes = {package_of(m) for m in modules()}
    while nodes - done:
        layer = sorted(n for n in nodes - done if all(b in done for a, b in edges if a == n))
        if not layer:  # a cycle: the cycle test names it
            return result + [sorted(nodes - done)]
        result.append(layer)
        done.update(layer)
    return result


def show_layers() -> str:
    return "\n".join(f"  layer {i}: {', '.join(layer)}" for i, layer in enumerate(layers()))


def test_the_graph_is_read():
    # The scan finds the imports it must judge (guards against a parser that finds nothing).
    edges = imports()
    assert ("tinkerx.app", "tinkerx.lifecycle") in edges and edges[("tinkerx.app", "tinkerx.lifecycle")]
    assert ("tinkerx.build", "tinkerx.rewards.guarded") in edges  # a function-level import
    assert {"tinkerx.__main__", "tinkerx.resume", "tinkerx.reproduce", "tinkerx.mcp.__main__"} <= entry_points()
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]


def test_lower_layers_import_no_front_door_or_entry_point():
    bad = [
        f"{a} -> {b}" for a, b in sorted(imports())
        if a.split(".")[1] in LOWER and (_is(b, FRONT_DOORS) or b in entry_points())
    ]  # fmt: skip
    assert not bad, "imports running up from a lower layer:\n" + "\n".join(bad) + "\nlayers:\n" + show_layers()


def test_entry_points_are_imported_only_by_entry_points_of_their_package():
    eps = entry_points()
    bad = [
        f"{a} -> {b}" for a, b in sorted(imports())
        if b in eps and (b.endswith("__main__") or a not in eps or a.rpartition(".")[0] != b.rpartition(".")[0])
    ]  # fmt: skip
    assert not bad, "entry points used as libraries (move what they share into a module below them):\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    top_level = cycles({e for e, module_level in imports().items() if module_level})
    assert not top_level, f"cycles among module-level imports: {top_level}"
    everything = cycles(set(imports()))
    assert not everything, f"cycles once imports inside functions count: {everything}"


def test_no_import_cycles_between_packages():
    found = cycles(package_edges())
    assert not found, f"cycles between packages: {found}\nlayers:\n{show_layers()}"
