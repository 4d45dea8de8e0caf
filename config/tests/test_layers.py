"""Every module sits in one layer of the import-linter contract, so `lint-imports` sees it."""

from __future__ import annotations

import tomllib
from importlib import import_module
from pathlib import Path

from django.conf import settings

PYPROJECT = tomllib.loads((Path(settings.BASE_DIR) / "pyproject.toml").read_text())
CONFIG = PYPROJECT["tool"]["importlinter"]
(CONTRACT,) = [c for c in CONFIG["contracts"] if c["id"] == "layers"]
LAYERS = [[name.strip() for name in layer.split(":")] for layer in CONTRACT["layers"]]


def modules_of(package: str) -> list[str]:
    """Return the package's modules, tests, migrations and the package itself aside."""
    root = Path(settings.BASE_DIR) / package
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if {"tests", "migrations"} & set(parts) or parts == ("__init__",):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join((package, *parts)))
    return found


def test_every_module_is_in_exactly_one_layer():
    unplaced, twice = [], []
    for package in CONFIG["root_packages"]:
        for module in modules_of(package):
            layers = [
                i
                for i, layer in enumerate(LAYERS)
                if any(module == name or module.startswith(f"{name}.") for name in layer)
            ]
            if not layers:
                unplaced.append(module)
            elif len(layers) > 1:
                twice.append(module)
    assert unplaced == [], "add these modules to a layer in pyproject.toml"
    assert twice == []


def test_every_app_of_the_project_is_layered():
    base = Path(settings.BASE_DIR).resolve()
    ours = {
        app.split(".")[0]
        for app in settings.INSTALLED_APPS
        if base in Path(import_module(app).__file__).resolve().parents
        and "site-packages" not in Path(import_module(app).__file__).parts  # a .venv inside
    }
    assert ours | {"config"} <= set(CONFIG["root_packages"])


def test_the_cores_are_in_the_decided_order():
    def app_of(layer):
        return {name.split(".")[0] for name in layer}

    assert [app_of(layer) for layer in LAYERS[1:]] == [
        {"leaks", "events", "demo"},
        {"apikeys"},
        {"orgs"},
        {"audit"},
        {"config"},
    ]
