"""bench/ and the tests share only the harness; the harness needs nothing of Keyward's.

Every import counts, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness import ROOT


def project_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def imports(path: Path) -> set[str]:
    """Return every module `path` imports, absolute names, wherever the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def python_files(*under: str) -> list[Path]:
    files = [path for name in under for path in (ROOT / name).rglob("*.py")]
    assert files, under  # the scan looks where the code is
    return files


def is_test_module(path: Path) -> bool:
    relative = path.relative_to(ROOT)
    return "tests" in relative.parts or relative.name == "conftest.py"


def is_test_import(name: str) -> bool:
    return name == "conftest" or ".tests" in f".{name}"


def test_bench_imports_no_test_module():
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in python_files("bench")
        for name in imports(path)
        if is_test_import(name)
    }
    assert offenders == set()


def test_no_test_imports_bench():
    tests = [path for path in ROOT.rglob("*.py") if ".venv" not in path.parts]
    tests = [path for path in tests if is_test_module(path)]
    assert len(tests) > 20
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in tests
        for name in imports(path)
        if name == "bench" or name.startswith("bench.")
    }
    assert offenders == set()


def test_the_harness_imports_nothing_of_keyward():
    keyward = project_packages() - {"harness"}
    assert {"apikeys", "bench", "config", "orgs"} <= keyward
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in python_files("harness")
        if not is_test_module(path)
        for name in imports(path)
        if name.split(".")[0] in keyward
    }
    assert offenders == set()
