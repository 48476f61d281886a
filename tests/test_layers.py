"""The import graph keeps its layers, has no cycle, and only the logger's store speaks its SQL.

How this works: every module of the source packages is parsed with `ast`, and every `import`
and `from ... import` anywhere in it counts (module level, inside functions, under
`if TYPE_CHECKING:`). `from a.b import c` is an edge to `a.b.c` when that is a module, else to
`a.b`; relative imports are resolved against the importing module's package. Importing a
submodule also runs its parents' `__init__`, but that is Python's mechanics, not a dependency
the code chose: it is not an edge.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "firmware_py", "controller", "broker", "tools")
STORE = "broker.logger.store"
# What each package must not import (the bottom layer first).
FORBIDDEN = {
    "contract": ("firmware_py", "controller", "broker", "tools"),
    "firmware_py": ("controller", "broker", "tools"),
    "controller": ("broker", "tools"),
    "broker": ("controller", "tools"),  # the central side needs nothing of the room package
}
# The central side, its tooling and the benchmarks reach the logger's tables only via the store.
# The board's accounts database has its own schema (users, sessions, audit) in its own file.
SQL_SCOPE = ("broker", "tools", "bench")
OWN_DATABASE = {"broker.board.users": "the board's accounts database (board.sqlite)"}


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """{dotted module name: file} of every module under the given top-level packages."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that `module` imports, anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    wanted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                sub = f"{prefix}.{alias.name}"
                wanted.add(sub if sub in known else prefix)
    return {m for m in wanted if m in known and m != module}


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    files = module_files(root, packages)
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan, recursive: the graph is a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c), c[0]) for c in components]


def _cycle_in(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A path start -> ... -> start inside one strongly connected component (BFS)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def logger_tables() -> set[str]:
    """The logger's table names, read from its own schema (every migration)."""
    from broker.logger.store.sqlite_schema import MIGRATIONS

    names = {"schema_version"}
    for script in MIGRATIONS:
        names.update(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", script))
    return names


def sql_against(text: str, tables: set[str]) -> set[str]:
    """Tables of `tables` that SQL in `text` reads or writes (SQL keywords are upper case)."""
    pattern = re.compile(
        r"\b(?:(?:INSERT|REPLACE)\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|FROM|JOIN|"
        r"(?:CREATE|ALTER|DROP)\s+TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?)\s+[\"'`]?(\w+)"
    )
    return {m for m in pattern.findall(text) if m in tables}


# -- the rules ------------------------------------------------------------------------------
GRAPH = import_graph(REPO, PACKAGES)


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    assert "broker.logger.store" in GRAPH["broker.logger.service"]
    assert GRAPH["broker.board.app"] >= {"broker.board.pages", "broker.board.api"}
    assert "broker.board.guard" in GRAPH["broker.board.pages"]
    assert "broker.status.tui" in GRAPH["broker.status.cli"]  # imported inside a function


def test_no_import_cycle() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers(package: str) -> None:
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert not bad, f"{package} must not import {FORBIDDEN[package]}:\n" + "\n".join(bad)


def test_only_the_store_speaks_the_loggers_sql() -> None:
    tables = logger_tables()
    assert {"messages", "vitals", "events", "calls", "sessions", "quarantine"} <= tables
    offenders = {}
    for module, path in module_files(REPO, SQL_SCOPE).items():
        if module == STORE or module.startswith(STORE + ".") or module in OWN_DATABASE:
            continue
        hit = sql_against(path.read_text(encoding="utf-8"), tables)
        if hit:
            offenders[module] = sorted(hit)
    assert not offenders, f"SQL against the logger's tables outside {STORE}: {offenders}"


# -- the checks catch what they are for --------------------------------------------------------
def test_a_planted_cycle_is_reported(tmp_path: Path) -> None:
    pkg = tmp_path / "plant"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from plant import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from plant.a import y\n"
    )
    (pkg / "d.py").write_text("import plant.a\n")  # depends on the cycle, is not part of it
    graph = import_graph(tmp_path, ["plant"])
    assert find_cycles(graph) == [["plant.a", "plant.b", "plant.c", "plant.a"]]
    assert find_cycles({"x": {"x"}, "y": set()}) == []  # a self-import is not a module cycle


def test_planted_sql_is_found() -> None:
    tables = {"messages", "vitals", "room_state"}
    assert sql_against('db.execute("SELECT seq FROM messages WHERE room = ?")', tables) == {
        "messages"
    }
    assert sql_against("INSERT INTO vitals (site) VALUES (?)", tables) == {"vitals"}
    assert sql_against("UPDATE room_state SET phase = ?", tables) == {"room_state"}
    assert sql_against("SELECT key FROM meta; the messages from a room", tables) == set()
