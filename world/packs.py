"""The bundled model's pack plan: which eyes and mouths make a sticker pack's expressions.

    python -m world.packs          # writes engine/models/sticker-world/pack.json

The expressions are combinations of the grammar's eye and mouth words (world/scene.py); the
groups tell the engine (engine/packs.py) that eye words replace each other, and mouth words.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.packs import PACK_FILE
from world.checker import DEFAULT_FOLDER
from world.scene import EYE_WORDS, MOUTH_WORDS

MODEL_FOLDER = DEFAULT_FOLDER.parent
TEMPLATE = "a big {} in the center with sky background"
# (name, eyes, mouth, emoji): six of the nine combinations, the ones an emoji can name
EXPRESSIONS = (
    ("happy", "big", "smile", "😀"),
    ("surprised", "big", "open", "😮"),
    ("content", "sleepy", "smile", "😌"),
    ("sleepy", "sleepy", "flat", "😴"),
    ("serious", "dots", "flat", "😐"),
    ("shouting", "dots", "open", "😲"),
)


def pack_plan() -> dict:
    """The pack.json content of the bundled model."""
    return {"template": TEMPLATE,
            "groups": [list(EYE_WORDS.values()), list(MOUTH_WORDS.values())],
            "expressions": [{"name": name, "words": [EYE_WORDS[eyes], MOUTH_WORDS[mouth]],
                             "emoji": emoji} for name, eyes, mouth, emoji in EXPRESSIONS]}


def write_pack_plan(model_folder: Path = MODEL_FOLDER) -> Path:
    """Write pack.json into a model folder."""
    path = Path(model_folder) / PACK_FILE
    path.write_text(json.dumps(pack_plan(), indent=2, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    print(write_pack_plan())
