"""The code reads without ambiguity: no two public classes of the project's packages share a name,
so a name met where packages meet (a job result, a stored row, a worker lane) means one thing;
and no test module imports another (what tests share lives in helper modules such as
tests/helpers.py, or in conftest.py fixtures)."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_packages() -> list[Path]:
    """The top-level packages pyproject.toml ships (its `packages.find` include patterns)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(path.parent for path in ROOT.glob("*/__init__.py")
                  if any(fnmatch.fnmatch(path.parent.name, pattern) for pattern in patterns))


def public_classes(module: Path) -> list[str]:
    """Names of the classes a module defines at its top level whose names don't start with _."""
    tree = ast.parse(module.read_text(), filename=str(module))
    return [node.name for node in tree.body
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_")]


def shared_class_names(packages: list[Path]) -> dict[str, list[str]]:
    """Each public class name defined in more than one module of `packages`, with those modules."""
    where: dict[str, list[str]] = defaultdict(list)
    for package in packages:
        for module in sorted(package.rglob("*.py")):
            for name in public_classes(module):
                where[name].append(str(module.relative_to(package.parent)))
    return {name: modules for name, modules in where.items() if len(modules) > 1}


def test_the_scan_finds_packages_and_a_shared_name(tmp_path: Path) -> None:
    for package, source in (("one", "class Result:\n    pass\n\nclass _Private:\n    pass\n"),
                            ("two", "class Result:\n    pass\n\nclass _Private:\n    pass\n")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(source)
    assert shared_class_names([tmp_path / "one", tmp_path / "two"]) == {
        "Result": ["one/__init__.py", "two/__init__.py"]}
    names = {package.name for package in project_packages()}
    assert {"bot", "engine", "storage", "worker", "oneword", "botapi", "world"} <= names


def test_no_two_public_classes_share_a_name() -> None:
    shared = shared_class_names(project_packages())
    assert not shared, "\n".join(f"{name}: {', '.join(modules)}"
                                 for name, modules in sorted(shared.items()))


def imported_test_modules(module: Path) -> set[str]:
    """The test modules (``tests/test_*.py``) that ``module`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name.split(".")[1] for name in names
                  if name.startswith("tests.test_") and name.count(".") == 1}
    return found


def test_the_import_scan_finds_test_modules(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("import os\nfrom tests.test_b import x\n"
                                        "from tests import helpers, test_c\n"
                                        "def f():\n    import tests.test_d\n")
    assert imported_test_modules(tmp_path / "test_a.py") == {"test_b", "test_c", "test_d"}


def test_no_test_module_imports_another() -> None:
    imports = {module.name: imported_test_modules(module)
               for module in sorted((ROOT / "tests").glob("*.py"))}
    assert {name: found for name, found in imports.items() if found} == {}
