"""The import graph of ``cellbench`` only points down the layer order of docs/architecture.md.

Every module is parsed with ``ast`` (nothing is imported); every ``cellbench.*`` import it
makes, at module level or inside a function, is an edge between two top-level units
(``cellbench.maps``, ``cellbench.registry``, ...). An edge from a unit to a unit of a higher
layer fails the test unless it is in ``ALLOWED_UPWARD`` below, and so does a circle of imports
between modules (of one layer or not).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cellbench"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: Known upward edges (importing module, imported module), to be removed, not added to. Empty:
#: every edge points down (the training methods live in ``cellbench.methods``, above
#: ``cellbench.train``, and the loop loads them by name). Keep it empty.
ALLOWED_UPWARD: frozenset[tuple[str, str]] = frozenset()


def layer_order() -> dict[str, int]:
    """Unit -> layer number, read from the numbered list under "## Layers" in architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rank: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"(\d+)\. (.*)", line)
        if m:
            head = m.group(2).split(" — ")[0]
            for unit in re.findall(r"`cellbench(?:\.([a-z_]+))?`", head):
                rank[unit or "__init__"] = int(m.group(1))
    return rank


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every ``cellbench.*`` module that ``path`` imports, at any depth (relative ones resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:  # ``from cellbench import registry`` imports a module
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return {name for name in found if name == "cellbench" or name.startswith("cellbench.")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_edges() -> set[tuple[str, str]]:
    """(importing module, imported module) for every cellbench -> cellbench import."""
    return {
        (_module_name(p), target) for p in sorted(PACKAGE.rglob("*.py")) for target in _imports(p)
    }


def test_every_unit_has_a_layer():
    rank = layer_order()
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units - set(rank) == set(), "add these to the layer list of docs/architecture.md"
    assert set(rank) - units == set(), "docs/architecture.md lists units that do not exist"


def test_the_parser_sees_function_level_and_module_imports():
    edges = import_edges()
    assert ("cellbench.report.run_summary", "cellbench.registry") in edges  # inside a function
    assert ("cellbench.evaluate", "cellbench.maps.build") in edges  # module level
    assert (
        "cellbench.report.tables",
        "cellbench.registry",
    ) in edges  # from cellbench import registry


def test_no_new_upward_import():
    rank = layer_order()
    upward = sorted(
        (a, b)
        for a, b in import_edges()
        if _unit(a) != _unit(b) and rank[_unit(b)] > rank[_unit(a)] and (a, b) not in ALLOWED_UPWARD
    )
    assert upward == [], (
        "imports that point UP the layer order of docs/architecture.md (move the shared code "
        f"down a layer instead): {upward}"
    )


def test_allow_list_has_no_stale_entries():
    stale = sorted(ALLOWED_UPWARD - import_edges())
    assert stale == [], f"these upward imports are gone: remove them from ALLOWED_UPWARD: {stale}"


def import_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The import circles among modules: each strongly connected group of more than one module
    (Tarjan's algorithm), sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def test_the_cycle_finder_finds_a_circle():
    edges = {("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "d")}
    assert import_cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    """Within a layer too, imports go one way: no two modules import each other, directly or
    through others (move the shared piece to the lower module instead)."""
    cycles = import_cycles(import_edges())
    assert cycles == [], f"modules that import each other (directly or round a circle): {cycles}"


def test_importing_the_encoders_imports_no_training_code():
    """Inference (``cellbench.encoders``) loads without ``cellbench.train`` or ``cellbench.methods``.

    Checked in a fresh interpreter through ``sys.modules``, so an import done by another module
    at import time (not only the ones ``ast`` sees in ``cellbench/encoders``) is caught too.
    """
    modules = sorted(_module_name(p) for p in (PACKAGE / "encoders").glob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('cellbench.train', 'cellbench.methods')))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert out.stdout.split() == [], (
        f"importing cellbench.encoders imported training code: {out.stdout}"
    )
