"""The test suite's own layout (house style rule 20): every `tests/test_*.py` holds tests, no
module imports a test module, and helpers live in tests/support/, not beside the tests.

How this works: each file is parsed with `ast` (nothing is imported). A test is a module-level
`def test*` or a `def test*` in a `class Test*`, as pytest collects them. Every `import` and
`from ... import` anywhere in a file counts, relative ones resolved against the file's package;
`from tests import test_x` names the module `tests.test_x`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# Where an import of a test module would hide: the tests and their helpers, and what may reuse
# them (the benchmarks, the tools that run the reliability campaign).
IMPORTERS = (TESTS, REPO / "bench", REPO / "tools")
TEST_MODULE = re.compile(r"^tests\.test_\w+")
# What may sit directly in tests/ besides test_*.py.
NOT_TESTS = {"__init__.py", "conftest.py"}

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def collected_tests(tree: ast.Module) -> list[str]:
    """The tests pytest would collect from a module's syntax tree."""
    names = []
    for node in tree.body:
        if isinstance(node, _FUNCTIONS) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names += [
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, _FUNCTIONS) and item.name.startswith("test")
            ]
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module name a file imports, and `package.name` for each `from package import name`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def suite_modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


def test_every_test_module_holds_a_test() -> None:
    modules = suite_modules()
    assert len(modules) > 40
    empty = [
        p.name
        for p in modules
        if not collected_tests(ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
    ]
    assert empty == [], f"test modules without a test (helpers belong in tests/support/): {empty}"


def test_no_module_imports_a_test_module() -> None:
    offenders = {}
    for root in IMPORTERS:
        for path in sorted(root.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            bad = sorted({m.group(0) for m in map(TEST_MODULE.match, imported(path)) if m})
            if bad:
                offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}, f"move what these use into tests/support/: {offenders}"


def test_helpers_live_in_tests_support() -> None:
    strays = [
        p.name
        for p in sorted(TESTS.glob("*.py"))
        if p.name not in NOT_TESTS and not p.name.startswith("test_")
    ]
    assert strays == [], f"helper modules beside the tests (move them to tests/support/): {strays}"
    assert (TESTS / "support" / "__init__.py").exists()
    assert not list((TESTS / "support").glob("test_*.py")), "tests/support/ holds no tests"
