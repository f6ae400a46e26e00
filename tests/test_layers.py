"""The packages stack in layers and every import points down: the shared contract (oneword/)
imports nothing of the project, the engine knows no chat, no storage and no sticker world, and
the command line (cli/) sits above everything. Read from the source with ast, without importing.

Modules named ``__main__`` are process entry points (``python -m bot``): nothing imports them,
so they may start the command line from any package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What each package may import of the project; anything else is an arrow up (or sideways).
ALLOWED: dict[str, frozenset[str]] = {
    "oneword": frozenset(),
    "storage": frozenset({"oneword"}),
    "engine": frozenset({"oneword"}),
    "botapi": frozenset(),
    "world": frozenset({"engine", "oneword"}),
    "worker": frozenset({"engine", "storage", "oneword"}),
    "bot": frozenset({"storage", "oneword"}),
    "playground": frozenset({"bot", "worker", "world", "engine", "storage", "botapi", "oneword"}),
    "bench": frozenset({"playground", "bot", "worker", "world", "engine", "storage", "botapi",
                        "oneword"}),
    "cli": frozenset({"bench", "playground", "bot", "worker", "world", "engine", "storage",
                      "botapi", "oneword"}),
}


def imported_packages(path: Path, packages: set[str]) -> set[str]:
    """The project packages a module imports anywhere in it (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {name.split(".")[0] for name in names} & packages
    return found


def upward_arrows(root: Path, allowed: dict[str, frozenset[str]]) -> list[str]:
    """"module -> package" for every import a package's layer does not allow."""
    arrows = []
    for package, may in allowed.items():
        for module in sorted((root / package).rglob("*.py")):
            if module.stem == "__main__":
                continue
            for target in sorted(imported_packages(module, set(allowed)) - may - {package}):
                arrows.append(f"{module.relative_to(root)} -> {target}")
    return arrows


def test_the_check_sees_an_upward_arrow(tmp_path: Path) -> None:
    for package, source in (("low", "import json\n"), ("high", "from low import x\n")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(source)
    (tmp_path / "low" / "late.py").write_text("def f():\n    from high import y\n")
    (tmp_path / "low" / "__main__.py").write_text("from high import main\n")
    layers = {"low": frozenset(), "high": frozenset({"low"})}
    assert upward_arrows(tmp_path, layers) == ["low/late.py -> high"]


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(ALLOWED), f"give these packages a layer: {packages - set(ALLOWED)}"


def test_no_package_imports_upward() -> None:
    assert upward_arrows(ROOT, ALLOWED) == []


# ------------------------------------------------------------------ the engine knows no world

def world_caption_phrases() -> list[re.Pattern[str]]:
    """What only the sticker world's captions say: its places, backgrounds, styles and shape
    names (written out here, as this check must not trust the world's own lists). "square",
    "face", "pixel" and "outline" are everyday words, so they count only in a caption's form
    ("a big red square", "in pixel style")."""
    backgrounds = ("grass", "sky", "sand", "night", "snow", "brick")
    styles = ("pixel", "outline", "pastel", "sepia", "duotone")
    shapes = ("circle", "triangle", "star", "heart", "diamond", "creature")
    sized = r"(?:small|big|red|green|blue|yellow|purple|orange|white|black)"
    return [re.compile(p, re.IGNORECASE) for p in (
        r"\bon the (?:left|right)\b", r"\bin the cent(?:er|re)\b",
        rf"\b(?:{'|'.join(backgrounds)}) background\b",
        rf"\bin (?:{'|'.join(styles)}) style\b", r"\b(?:sepia|duotone)\b",
        rf"\b(?:{'|'.join(shapes)})s?\b", rf"\b{sized} (?:square|face)s?\b")]


def world_phrases_in(folder: Path) -> list[str]:
    """"file:line: text" for every line of the folder's Python files with a world phrase."""
    found = []
    patterns = world_caption_phrases()
    for path in sorted(folder.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.search(line) for p in patterns):
                found.append(f"{path.relative_to(folder)}:{number}: {line.strip()}")
    return found


def test_the_phrase_check_finds_world_phrases(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('CAPTION = "a big red circle on the left with grass '
                                   'background"\n# square images, a face to face talk\n'
                                   'x = "a small blue square"\n')
    found = world_phrases_in(tmp_path)
    assert [line.split(":")[1] for line in found] == ["1", "3"]


def test_the_engine_has_no_world_caption_phrase() -> None:
    assert world_phrases_in(ROOT / "engine") == []


# The engine's own tests run on the tiny random SD model with nothing of world/ imported: their
# modules and the helpers they build models and photos with import none of it (and the engine
# itself imports none, above).
ENGINE_TESTS = ("test_operations.py", "test_editing.py", "test_inversion.py", "test_concepts.py",
                "test_model.py", "test_textual_inversion.py", "test_learning_focus.py",
                "test_real_photos.py", "conftest.py", "tiny_model.py", "tiny_captioner.py",
                "pictures.py")


def test_the_engines_tests_import_nothing_of_the_world() -> None:
    importing = [name for name in ENGINE_TESTS
                 if "world" in imported_packages(ROOT / "tests" / name, {"world"})]
    assert importing == []
