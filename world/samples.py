"""Sample photos shipped for demos, docs and tests: the reserved concepts and target scenes.

    python -m world.samples            # rewrites engine/samples/
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from world.render import render
from world.scene import (
    RESERVED_STYLE,
    Scene,
    caption,
    random_group,
    random_scene,
    reserved_creature,
    reserved_object,
    reserved_person,
)

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "engine" / "samples"
SIDE = 256
SCENES = (
    "a big red circle on the left and a small blue star on the right with grass background",
    "a big yellow square in the center with sky background",
    "a small green heart on the left and a big purple triangle on the right with sand background",
    "a big orange star on the right with night background",
    "a small white diamond on the left and a big red circle on the right with snow background",
)


def concept_scenes(which: str) -> list[Scene]:
    """Five scenes that show one reserved concept in different places and settings."""
    rng = random.Random(f"samples-{which}")
    spots = [("big", "center", "sky"), ("small", "left", "grass"), ("big", "right", "sand"),
             ("small", "center", "snow"), ("big", "left", "brick")]
    if which == "style":
        return [replace(random_scene(rng, style_probability=0), style=RESERVED_STYLE)
                for _ in spots]
    make = {"creature": reserved_creature, "object": reserved_object,
            "person": reserved_person}[which]
    return [Scene((make(size, position),), background, None, rng.randrange(1 << 30))
            for size, position, background in spots]


def target_scenes() -> list[Scene]:
    """The demo's target photos, built from their captions' words."""
    from world.scene import COLOURS, WorldObject

    rng = random.Random("samples-targets")
    scenes = []
    for text in SCENES:
        head, background = text.rsplit(" with ", 1)
        objects = []
        for phrase in head.split(" and "):
            words = phrase.split()
            size, colour, kind, position = words[1], words[2], words[3], words[-1]
            objects.append(WorldObject(kind, colour, size, position, COLOURS[colour]))
        scenes.append(Scene(tuple(objects), background.split()[0], None, rng.randrange(1 << 30)))
    return scenes


def group_scenes(count: int = 2) -> list[Scene]:
    """Group photos of two faces with a free place between or beside them: where the
    reserved person, learned from her portraits, is added in the demo."""
    rng = random.Random("samples-groups")
    scenes: list[Scene] = []
    while len(scenes) < count:
        scene = random_group(rng)
        faces = [o for o in scene.objects if o.kind == "face"]
        if (len(scene.objects) == 2 and len(faces) == 2 and scene.style is None
                and faces[0].size == faces[1].size):
            scenes.append(scene)
    return scenes


def write_samples(folder: Path = SAMPLES_DIR) -> dict:
    """Render every sample set into `folder`; returns the index written to samples.json."""
    index: dict[str, list] = {}
    for which in ("creature", "object", "style", "person"):
        (folder / which).mkdir(parents=True, exist_ok=True)
        index[which] = []
        for i, scene in enumerate(concept_scenes(which), start=1):
            name = f"{which}/{which}-{i}.png"
            render(scene, SIDE).image.save(folder / name, optimize=True)
            index[which].append(name)
    (folder / "scenes").mkdir(parents=True, exist_ok=True)
    index["scenes"] = []
    for i, scene in enumerate(target_scenes() + group_scenes(), start=1):
        name = f"scenes/scene-{i}.png"
        render(scene, SIDE).image.save(folder / name, optimize=True)
        index["scenes"].append({"file": name, "caption": caption(scene)})
    (folder / "samples.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


if __name__ == "__main__":
    print(json.dumps(write_samples(), indent=2))
