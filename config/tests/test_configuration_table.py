"""The README's configuration tables name every environment variable the code reads, no more."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
SKIPPED_DIRECTORIES = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    "migrations",
    "staticfiles",
    "test-output",
}
# django-environ's readers: env.str("NAME", …), env.bool(…), … and env("NAME").
ENV_READERS = {
    "bool", "bytes", "cache", "cache_url", "db", "db_url", "decimal", "dict", "email",
    "email_url", "float", "get_value", "int", "json", "list", "path", "search_url", "str",
    "tuple", "url",
}  # fmt: skip
LUA_GETENV = re.compile(r"""os\.getenv\(\s*["']([A-Z][A-Z0-9_]*)["']""")
NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def source_files(suffix: str) -> list[Path]:
    found = []
    for path in sorted(BASE_DIR.rglob(f"*{suffix}")):
        if not SKIPPED_DIRECTORIES & set(path.relative_to(BASE_DIR).parts):
            found.append(path)
    return found


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_name(node.value, "os")


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _reads_a_variable(func: ast.AST) -> bool:
    """Return whether calling `func` with a name as first argument reads that variable."""
    if _is_name(func, "env"):
        return True
    if not isinstance(func, ast.Attribute):
        return False
    return (
        (func.attr in ENV_READERS and _is_name(func.value, "env"))
        or (func.attr in {"get", "setdefault", "pop"} and _is_os_environ(func.value))
        or (func.attr == "getenv" and _is_name(func.value, "os"))
    )


def _name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
        return node.value
    return None


def _named_variables(tree: ast.AST) -> set[str]:
    """Return the names a module keeps in constants for reading later.

    `PORTS_VARIABLE = "X"` (a module-level `*_VARIABLE`), and the names in a
    module-level `*_VARIABLES` mapping or sequence of names or (name, default)
    pairs: the harness reads its variables through such constants.
    """
    found: set[str] = set()
    for node in getattr(tree, "body", []):
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not any(n.endswith(("_VARIABLE", "_VARIABLES")) for n in names) or node.value is None:
            continue
        for inner in ast.walk(node.value):
            name = _name(inner)
            if name:
                found.add(name)
    return found


def names_read(tree: ast.AST) -> set[str]:
    """Return the variables a module reads: env.*("X"), env("X"), os.environ…, os.getenv."""
    found: set[str] = _named_variables(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func, name = node.func, _name(node.args[0])
            if name is None:
                continue
            if _reads_a_variable(func):
                found.add(name)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            name = _name(node.slice)
            if name:
                found.add(name)
        elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            name = _name(node.left)
            if name:
                found.add(name)
    return found


def variables_read() -> dict[str, list[str]]:
    """Return each environment variable the code reads, with the files that read it."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in source_files(".py"):
        for name in names_read(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where[name].append(str(path.relative_to(BASE_DIR)))
    for path in source_files(".lua"):
        for name in LUA_GETENV.findall(path.read_text(encoding="utf-8")):
            where[name].append(str(path.relative_to(BASE_DIR)))
    return dict(where)


def variables_in_readme() -> set[str]:
    """Return the variables named in the first column of the README's configuration tables."""
    readme = (BASE_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        first_cell = line.split("|")[1]
        names.update(n for n in re.findall(r"`([^`]+)`", first_cell) if NAME.match(n))
    return names


def test_the_scanner_finds_reads_in_every_form():
    tree = ast.parse(
        "import os\n"
        "a = env.bool('A_ONE', default=False)\n"
        "b = env('A_TWO')\n"
        "c = os.environ.get('A_THREE')\n"
        "d = os.environ['A_FOUR']\n"
        "e = os.getenv('A_FIVE')\n"
        "f = 'A_SIX' in os.environ\n"
        "os.environ.setdefault('A_SEVEN', '1')\n"
        "g = other.get('NOT_ONE')\n"
        "h = 'os.environ.get(\"NOT_TWO\")'\n"
    )
    assert names_read(tree) == {
        f"A_{n}" for n in ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN")
    }


def test_the_scanner_sees_the_settings():
    read = variables_read()
    assert {"DEBUG", "SECRET_KEY", "KEYWARD_PEPPER", "CACHE_KEY_PREFIX", "LOG_LEVEL"} <= set(read)
    assert "config/settings.py" in read["KEYWARD_USAGE_FLUSH_SECONDS"]


def test_every_variable_the_code_reads_is_in_the_readme():
    listed = variables_in_readme()
    missing = {name: files for name, files in variables_read().items() if name not in listed}
    assert missing == {}, "add these to a table under '## Configuration' in README.md"


def test_every_variable_in_the_readme_is_read_somewhere():
    stale = variables_in_readme() - set(variables_read())
    assert stale == set(), "nothing reads these any more: remove them from README.md"
