"""The bundled sample photos (``engine/samples``): four sets to learn from (a creature, a
patterned object, a style and a person's portraits) and target scenes, group photos included.

The playground offers them one click away and the scripted story plays with them, so nobody
needs photos of their own to see OneWord work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import engine
from world.scene import SHAPES

SAMPLES_DIR = Path(engine.__file__).resolve().parent / "samples"

# What each learnable set shows, as the page labels it and as /learn names its kind.
SET_LABELS = {"creature": "Creature", "object": "Patterned object", "style": "Style",
              "person": "Person"}
SET_KINDS = {"creature": "object", "object": "object", "style": "style", "person": "person"}


@dataclass(frozen=True)
class SampleScene:
    """A target photo and the sentence that describes it in the sticker world's grammar."""

    path: Path
    caption: str

    @property
    def subjects(self) -> list[str]:
        """The shapes the caption names, left to right: words to replace or remove."""
        return [word for word in self.caption.split() if word in SHAPES]


@dataclass(frozen=True)
class Samples:
    """Every sample: learnable sets by name, and the scenes."""

    folder: Path
    sets: dict[str, list[Path]]
    scenes: list[SampleScene]

    def relative(self, path: Path) -> str:
        """The path inside the samples folder, with forward slashes (for URLs)."""
        return path.relative_to(self.folder).as_posix()


def load_samples(folder: Path = SAMPLES_DIR) -> Samples:
    """Read ``samples.json``: ``{set name: [files]}`` plus ``scenes: [{file, caption}]``."""
    index = json.loads((folder / "samples.json").read_text())
    scenes = [SampleScene(folder / item["file"], item["caption"])
              for item in index.pop("scenes", [])]
    sets = {name: [folder / file for file in files] for name, files in index.items()}
    return Samples(folder, sets, scenes)
