"""The house's one rule: each process's package imports only itself and the shared package `fcfs`, which imports
none of them (benchmarks and tests may import anything)."""

from __future__ import annotations

import ast

from tests.support import ROOT

PROCESSES = ("backend", "worker", "batch", "crowd", "dashboard")


def imported_packages(package: str) -> dict[str, set[str]]:
    """Every top-level project package each module of `package` imports, at any depth of the code."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names & {*PROCESSES, "fcfs"}
    return found


def test_no_process_imports_another_process_package() -> None:
    for package in PROCESSES:
        modules = imported_packages(package)
        assert modules, package
        strays = {module: names - {package, "fcfs"} for module, names in modules.items() if names - {package, "fcfs"}}
        assert not strays, strays


def test_the_shared_package_imports_no_process_package() -> None:
    strays = {module: names - {"fcfs"} for module, names in imported_packages("fcfs").items() if names - {"fcfs"}}
    assert not strays, strays


def test_routes_hold_no_sql() -> None:
    """A route calls the functions of backend/queries (or the shared package's), never a connection or a table."""
    strays = []
    for path in (ROOT / "backend" / "routes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("sqlalchemy", "fcfs.schema"):
                tables = [a.name for a in node.names if a.name[0].islower()] if node.module == "fcfs.schema" else []
                sql = [a.name for a in node.names if a.name in ("select", "text", "insert", "update", "delete")]
                strays += [f"{path.name}: {name}" for name in tables + sql]
            if isinstance(node, ast.Attribute) and node.attr in ("connect", "begin", "execute", "scalar"):
                strays.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not strays, strays
