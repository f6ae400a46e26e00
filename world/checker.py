"""The sticker world's checker: a small CNN that reads an image back into a scene description.

The renderer turns a Scene into pixels; the checker goes the other way, so that whatever the
diffusion model draws (a generated picture, an edit, a learned concept) can be measured against
what was asked for. It predicts the background, the style and, for each of the three position
slots, the object standing there: kind, colour, size, pattern and, for characters, their hue and
features (a face's also its identity: hair style and colour, glasses, beard). That is enough
to caption an image in the grammar (see captioner.py) and to tell whether a
reserved concept is shown.

    python -m world.checker --eval 1000            # agreement with the renderer
    python -m world.checker --eval 1000 --degrade  # the same on VAE-like degraded images

Network: a convolutional trunk to a 16x16 feature map; a global head (background, style) on its
pooled features; a slot head, shared by the three positions, on a window of the map centred on
each position (objects look alike wherever they stand, so one head sees three times the data).
The slot head has two towers, one for what any object is and one for a character's features.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageOps
from safetensors.torch import load_file

from world.scene import (
    BACKGROUNDS,
    BEARDS,
    CHARACTERS,
    COLOURS,
    CREATURE_MARKS,
    EARS,
    EYES,
    FACE_ONLY,
    GLASSES,
    HAIR_COLOURS,
    HAIR_STYLES,
    KINDS,
    MOUTHS,
    PATTERNS,
    POSITIONS,
    RESERVED_CREATURE,
    RESERVED_HUE_TOLERANCE,
    RESERVED_OBJECT,
    RESERVED_PERSON,
    RESERVED_STYLE,
    SIZES,
    STYLES,
    Features,
    Scene,
    WorldObject,
    caption,
    has_identity,
    hue_rgb,
    random_scene,
)

IMAGE_SIZE = 64
SLOTS = tuple(POSITIONS)  # left, center, right
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DEFAULT_FOLDER = (Path(__file__).resolve().parent.parent / "engine" / "models" / "sticker-world"
                  / "captioner")

# Classification targets and their classes; None means "no object" / "no style" / "no pattern".
SCENE_FIELDS: dict[str, tuple[str | None, ...]] = {
    "background": BACKGROUNDS,
    "style": (None,) + STYLES,
}
SLOT_FIELDS: dict[str, tuple[str | None, ...]] = {
    "kind": (None,) + KINDS,
    "colour": tuple(COLOURS),
    "size": tuple(SIZES),
    "pattern": (None,) + PATTERNS,
    "pattern_colour": tuple(COLOURS),
    "eyes": EYES,
    "ears": EARS,
    "mouth": MOUTHS,
    "marks": CREATURE_MARKS,
    "hair": HAIR_STYLES,
    "hair_colour": tuple(HAIR_COLOURS),
    "glasses": GLASSES,
    "beard": BEARDS,
}
# Read by the slot head's second tower; the last four (FACE_ONLY) are a face's identity.
CHARACTER_FIELDS = ("eyes", "ears", "mouth", "marks", *FACE_ONLY)
IGNORE = -100  # label of a field that does not apply (cross-entropy's ignore_index)


def scene_split_seed(split: str, index: int) -> str:
    """Seed of the index-th scene of a split; 'train' and 'eval' streams never share a seed."""
    return f"checker-{split}-{index}"


def split_scene(split: str, index: int, style_probability: float = 0.3,
                identities: bool = False) -> Scene:
    """The index-th random scene of a split (1-3 objects), reproducible from its seed."""
    rng = random.Random(scene_split_seed(split, index))
    return random_scene(rng, style_probability=style_probability, identities=identities)


# ---------------------------------------------------------------------------------------------
# Network


@dataclass
class NetConfig:
    """Widths of the checker network; stored with the weights so a folder describes itself."""

    widths: tuple[int, int, int] = (24, 32, 64)  # trunk at 64, 32 and 16 px
    slot_width: int = 48
    hidden: int = 128
    window: float = 0.5  # slot window width, as a fraction of the image


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU: the only building block."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CheckerNet(nn.Module):
    """Image (B, 3, 64, 64) in [-1, 1] -> logits per field: (B, n) scene, (B, 3, n) per slot."""

    def __init__(self, cfg: NetConfig, scene_fields: dict[str, int], slot_fields: dict[str, int]):
        super().__init__()
        w0, w1, w2 = cfg.widths
        self.trunk = nn.Sequential(
            conv_block(3, w0), conv_block(w0, w1, 2), conv_block(w1, w1),
            conv_block(w1, w2, 2), conv_block(w2, w2), conv_block(w2, w2))
        self.scene_mlp = nn.Sequential(nn.Linear(2 * w2, cfg.hidden), nn.ReLU(inplace=True))
        self.scene_heads = nn.ModuleDict(
            {name: nn.Linear(cfg.hidden, n) for name, n in scene_fields.items()})
        s = cfg.slot_width
        # Two towers: what any object is (kind, colour, ...) and a character's fine features.
        # Sharing one hidden layer let the slow-to-learn features hold back the shapes.
        self.object_tower = self._tower(w2, s, cfg.hidden)
        self.character_tower = self._tower(w2, s, cfg.hidden)
        self.slot_heads = nn.ModuleDict(
            {name: nn.Linear(cfg.hidden, n) for name, n in slot_fields.items()})
        self.hue_head = nn.Linear(cfg.hidden, 2)  # (cos, sin) of a character's hue angle
        self.register_buffer("grid", self._slot_grid(cfg.window), persistent=False)

    @staticmethod
    def _tower(cin: int, width: int, hidden: int) -> nn.Sequential:
        """Slot window (cin, 16, 8) -> hidden features, through strided convs and a linear."""
        return nn.Sequential(conv_block(cin, width, 2), conv_block(width, width),
                             conv_block(width, width, 2), nn.Flatten(),
                             nn.Linear(width * 4 * 2, hidden), nn.ReLU(inplace=True))

    @staticmethod
    def _slot_grid(window: float, rows: int = 16, cols: int = 8) -> torch.Tensor:
        """grid_sample coordinates of a full-height window centred on each position slot."""
        ys = (torch.arange(rows) + 0.5) / rows * 2 - 1
        grids = []
        for x in POSITIONS.values():
            xs = (2 * x - 1) + ((torch.arange(cols) + 0.5) / cols - 0.5) * 2 * window
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            grids.append(torch.stack([gx, gy], dim=-1))
        return torch.stack(grids)  # (3, rows, cols, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.trunk(x)  # (B, C, 16, 16)
        b, c, h, w = feats.shape
        pooled = torch.cat([feats.mean((2, 3)), feats.amax((2, 3))], dim=1)
        g = self.scene_mlp(pooled)
        out = {name: head(g) for name, head in self.scene_heads.items()}
        n = self.grid.shape[0]
        tiled = feats.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
        grid = self.grid.unsqueeze(0).expand(b, *self.grid.shape).reshape(b * n,
                                                                          *self.grid.shape[1:])
        windows = F.grid_sample(tiled, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)
        z_object, z_character = self.object_tower(windows), self.character_tower(windows)
        for name, head in self.slot_heads.items():
            z = z_character if name in CHARACTER_FIELDS else z_object
            out[name] = head(z).view(b, n, -1)
        out["hue"] = self.hue_head(z_character).view(b, n, 2)
        return out


def images_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images of any size -> (B, 3, 64, 64) float in [-1, 1]."""
    arrays = [np.asarray(fit_image(im), dtype=np.uint8) for im in images]
    return uint8_to_tensor(np.stack(arrays))


def uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def fit_image(image: Image.Image) -> Image.Image:
    """RGB at 64x64, centre-cropped to a square: box-filtered down (as the renderer does) or
    bicubic up."""
    image = image.convert("RGB")
    if image.size == (IMAGE_SIZE, IMAGE_SIZE):
        return image
    shrinking = min(image.size) > IMAGE_SIZE
    return ImageOps.fit(image, (IMAGE_SIZE, IMAGE_SIZE),
                        Image.BOX if shrinking else Image.BICUBIC)


# ---------------------------------------------------------------------------------------------
# Labels: a Scene as class indices per field (IGNORE where a field does not apply)


def colour_of(rgb: tuple[int, int, int] | None) -> str | None:
    """Name of the palette colour nearest an RGB triple (pattern colours are exact palette ones)."""
    if rgb is None:
        return None
    def distance(name: str) -> int:
        return sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb, strict=True))

    return min(COLOURS, key=distance)


def visible_identity(features: Features) -> tuple[str, ...]:
    """The identity parts (FACE_ONLY) a drawn face shows: none for a face without an identity
    (`has_identity`), all but the hair colour of a bald, beardless face, which has no hair to
    see the colour of."""
    if not has_identity(features):
        return ()
    if features.hair == "bald" and features.beard == "none":
        return tuple(name for name in FACE_ONLY if name != "hair_colour")
    return FACE_ONLY


def scene_labels(scene: Scene) -> dict[str, np.ndarray]:
    """Training targets of one scene: int arrays per field, 'hue' (3, 2) and 'hue_mask' (3,).

    A face's identity parts are labelled only on faces (and its hair colour only where it
    shows); a creature's ears and marks on characters."""
    labels: dict[str, np.ndarray] = {
        name: np.array(classes.index(getattr(scene, name)), np.int64)
        for name, classes in SCENE_FIELDS.items()}
    slot = {name: np.full(len(SLOTS), IGNORE, np.int64) for name in SLOT_FIELDS}
    hue = np.zeros((len(SLOTS), 2), np.float32)
    hue_mask = np.zeros(len(SLOTS), np.float32)
    for i, position in enumerate(SLOTS):
        obj = scene.object_at(position)
        slot["kind"][i] = SLOT_FIELDS["kind"].index(obj.kind if obj else None)
        if obj is None:
            continue
        values = {"colour": obj.colour, "size": obj.size, "pattern": obj.pattern,
                  "pattern_colour": colour_of(obj.pattern_rgb)}
        if obj.features is not None:
            f = obj.features
            values.update(eyes=f.eyes, ears=f.ears, mouth=f.mouth, marks=f.marks)
            if obj.kind == "face":
                values.update({name: getattr(f, name) for name in visible_identity(f)})
            angle = 2 * math.pi * f.hue
            hue[i] = (math.cos(angle), math.sin(angle))
            hue_mask[i] = 1.0
        for name, value in values.items():
            applies = name != "pattern_colour" or obj.pattern is not None
            if applies and (value is not None or None in SLOT_FIELDS[name]):
                slot[name][i] = SLOT_FIELDS[name].index(value)
    labels.update(slot)
    labels["hue"], labels["hue_mask"] = hue, hue_mask
    return labels


# ---------------------------------------------------------------------------------------------
# Readings


@dataclass(frozen=True)
class ObjectReading:
    """What the checker sees at one position; `confidence` is the probability of each answer."""

    kind: str
    colour: str
    size: str
    position: str
    pattern: str | None = None
    pattern_colour: str | None = None
    features: Features | None = None  # characters only; hue predicted, eye_size not; a
    # face's identity parts (hair, hair_colour, glasses, beard) read, a creature's left default
    confidence: dict[str, float] = field(default_factory=dict, compare=False)

    def to_object(self) -> WorldObject:
        """The WorldObject this reading describes (palette colours, centred, unit scale)."""
        rgb = hue_rgb(self.features.hue) if self.features else COLOURS[self.colour]
        pattern_rgb = COLOURS[self.pattern_colour] if self.pattern_colour else None
        return WorldObject(self.kind, self.colour, self.size, self.position, rgb,
                           pattern=self.pattern, pattern_rgb=pattern_rgb, features=self.features)


@dataclass(frozen=True)
class Reading:
    """The checker's description of one image: background, style and objects left to right."""

    background: str
    style: str | None
    objects: tuple[ObjectReading, ...]
    confidence: dict[str, float] = field(default_factory=dict, compare=False)

    def object_at(self, position: str) -> ObjectReading | None:
        """The object read at a position, if any."""
        return next((o for o in self.objects if o.position == position), None)

    def to_scene(self) -> Scene:
        """The Scene this reading describes, objects ordered left to right."""
        objects = sorted(self.objects, key=lambda o: POSITIONS[o.position])
        return Scene(tuple(o.to_object() for o in objects), self.background, self.style)


def matches(reading: Reading, scene: Scene) -> dict[str, bool]:
    """Which parts of a scene the reading gets right.

    Keys: 'background', 'style', then for each object of the scene '<position>.shape',
    '<position>.colour' and '<position>.size' (judged at the object's own position, so a right
    shape in the wrong place counts as wrong), for each face also its identity parts it shows
    ('<position>.hair', '.hair_colour', '.glasses', '.beard'; see visible_identity),
    'no_extra' (nothing read where the scene is empty) and 'all'.
    """
    result = {"background": reading.background == scene.background,
              "style": reading.style == scene.style}
    for obj in scene.objects:
        seen = reading.object_at(obj.position)
        result[f"{obj.position}.shape"] = seen is not None and seen.kind == obj.kind
        result[f"{obj.position}.colour"] = seen is not None and seen.colour == obj.colour
        result[f"{obj.position}.size"] = seen is not None and seen.size == obj.size
        if obj.kind == "face" and obj.features is not None:
            result.update({f"{obj.position}.{name}": ok
                           for name, ok in identity_agreement(seen, obj.features).items()})
    result["no_extra"] = all(scene.object_at(o.position) is not None for o in reading.objects)
    result["all"] = all(result.values())
    return result


def shows_reserved(reading: Reading, which: str, position: str | None = None) -> bool:
    """Whether the reading shows a reserved concept ('creature', 'object', 'person' or
    'style'): every one of its :func:`reserved_parts`.

    creature: a creature with the reserved eyes, ears, mouth and marks and a hue within the
    reserved band (as scene.is_reserved_creature); person: a face with the reserved person's
    eyes, mouth, hair, hair colour, glasses and beard and a hue within the band (as
    scene.is_reserved_person); object: the reserved kind, pattern, body colour and pattern
    colour; style: the reserved style (position is ignored). With `position`, only the object
    read there counts.
    """
    return all(reserved_parts(reading, which, position).values())


CREATURE_PARTS = ("eyes", "ears", "mouth", "marks")
PERSON_PARTS = ("eyes", "mouth", *FACE_ONLY)
RESERVED_PARTS = {"creature": ("kind", *CREATURE_PARTS, "hue"),
                  "object": ("kind", "colour", "pattern", "pattern_colour"),
                  "person": ("kind", *PERSON_PARTS, "hue")}


def _character_parts(o: ObjectReading, kind: str, reserved: Features,
                     parts: tuple[str, ...]) -> dict[str, bool]:
    f = o.features
    found = {"kind": o.kind == kind}
    for name in parts:
        found[name] = f is not None and getattr(f, name) == getattr(reserved, name)
    found["hue"] = f is not None and abs(f.hue - reserved.hue) < RESERVED_HUE_TOLERANCE
    return found


def _creature_parts(o: ObjectReading) -> dict[str, bool]:
    return _character_parts(o, "creature", RESERVED_CREATURE, CREATURE_PARTS)


def _person_parts(o: ObjectReading) -> dict[str, bool]:
    return _character_parts(o, "face", RESERVED_PERSON, PERSON_PARTS)


def _object_parts(o: ObjectReading) -> dict[str, bool]:
    kind, pattern, rgb, pattern_rgb = RESERVED_OBJECT
    return {"kind": o.kind == kind, "colour": o.colour == colour_of(rgb),
            "pattern": o.pattern == pattern,
            "pattern_colour": o.pattern_colour == colour_of(pattern_rgb)}


def reserved_parts(reading: Reading, which: str, position: str | None = None
                   ) -> dict[str, bool]:
    """Which parts of a reserved concept the reading shows, one by one, so a concept that is
    not yet :func:`shows_reserved` still tells how close it came (RESERVED_PARTS; a style has
    the one part 'style'). Judged on the object read at `position` (any object when None),
    the best-matching one when several are read."""
    if which == "style":
        return {"style": reading.style == RESERVED_STYLE}
    if which not in RESERVED_PARTS:
        raise ValueError(f"unknown reserved concept {which!r}; expected creature, object, "
                         "person or style")
    parts = {"creature": _creature_parts, "person": _person_parts,
             "object": _object_parts}[which]
    candidates = [parts(o) for o in reading.objects if position is None or o.position == position]
    return max(candidates, key=lambda found: sum(found.values()),
               default=dict.fromkeys(RESERVED_PARTS[which], False))


def agreement(reading: Reading, scene: Scene) -> dict[str, bool]:
    """Field-by-field agreement with ground truth, for measurement (keys 'field' or 'slot.field').

    Object fields are judged only where the truth has an object (features only for characters,
    identity parts only for faces, see identity_agreement, pattern colour only for patterned
    objects); 'hue' is right within 0.03 of the true hue.
    """
    result = {"background": reading.background == scene.background,
              "style": reading.style == scene.style}
    for position in SLOTS:
        truth, seen = scene.object_at(position), reading.object_at(position)
        result[f"{position}.kind"] = (truth and truth.kind) == (seen and seen.kind)
        if truth is None:
            continue
        for name in ("colour", "size", "pattern"):
            result[f"{position}.{name}"] = seen is not None and (
                getattr(seen, name) == getattr(truth, name))
        if truth.pattern is not None:
            result[f"{position}.pattern_colour"] = seen is not None and (
                seen.pattern_colour == colour_of(truth.pattern_rgb))
        if truth.features is not None:
            got = seen.features if seen is not None else None
            for name in ("eyes", "ears", "mouth", "marks"):
                result[f"{position}.{name}"] = got is not None and (
                    getattr(got, name) == getattr(truth.features, name))
            result[f"{position}.hue"] = got is not None and hue_distance(
                got.hue, truth.features.hue) < 0.03
            if truth.kind == "face":
                result.update({f"{position}.{name}": ok for name, ok in
                               identity_agreement(seen, truth.features).items()})
    return result


def identity_agreement(seen: ObjectReading | None, truth: Features) -> dict[str, bool]:
    """Per identity part a face shows (visible_identity), whether the object read at its place
    is a face with that part as drawn."""
    got = seen.features if seen is not None and seen.kind == "face" else None
    return {name: got is not None and getattr(got, name) == getattr(truth, name)
            for name in visible_identity(truth)}


def hue_distance(a: float, b: float) -> float:
    """Distance between two hues on the colour circle (0..0.5)."""
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


# ---------------------------------------------------------------------------------------------
# The checker


class Checker:
    """A trained CheckerNet with its class lists; `read` turns images into Readings."""

    def __init__(self, net: CheckerNet, scene_fields: dict[str, tuple[str | None, ...]],
                 slot_fields: dict[str, tuple[str | None, ...]], device: str = "cpu"):
        self.net = net.to(device).eval()
        self.scene_fields, self.slot_fields = scene_fields, slot_fields
        self.device = torch.device(device)

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_FOLDER, device: str = "cpu") -> Checker:
        """Load `model.safetensors` + `config.json` written by train_checker.export."""
        folder = Path(folder)
        config = json.loads((folder / CONFIG_FILE).read_text())
        net_cfg = NetConfig(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in config["net"].items()})
        scene_fields = {k: tuple(v) for k, v in config["scene_fields"].items()}
        slot_fields = {k: tuple(v) for k, v in config["slot_fields"].items()}
        net = CheckerNet(net_cfg, {k: len(v) for k, v in scene_fields.items()},
                         {k: len(v) for k, v in slot_fields.items()})
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in load_file(folder / WEIGHTS_FILE).items()}
        net.load_state_dict(state)
        return cls(net, scene_fields, slot_fields, device)

    @torch.no_grad()
    def read(self, images: Image.Image | Sequence[Image.Image], batch: int = 256) -> list[Reading]:
        """Read each image (any size, resized to 64x64) into a Reading."""
        if isinstance(images, Image.Image):
            images = [images]
        readings: list[Reading] = []
        for start in range(0, len(images), batch):
            x = images_to_tensor(images[start:start + batch]).to(self.device)
            out = self.net(x)
            probs = {k: v.float().softmax(-1).cpu() for k, v in out.items() if k != "hue"}
            hues = (torch.atan2(out["hue"][..., 1], out["hue"][..., 0]) / (2 * math.pi)) % 1.0
            for i in range(x.shape[0]):
                readings.append(self._reading(probs, hues.cpu(), i))
        return readings

    @torch.no_grad()
    def scene_probabilities(self, image: Image.Image, name: str) -> dict[str | None, float]:
        """How likely each class of a scene field ("background" or "style") is for one image."""
        probs = self.net(images_to_tensor([image]).to(self.device))[name][0].float().softmax(-1)
        return dict(zip(self.scene_fields[name], probs.tolist(), strict=True))

    def _pick(self, classes: tuple, p: torch.Tensor) -> tuple[str | None, float]:
        j = int(p.argmax())
        return classes[j], float(p[j])

    def _reading(self, probs: dict[str, torch.Tensor], hues: torch.Tensor, i: int) -> Reading:
        confidence: dict[str, float] = {}
        scene: dict[str, str | None] = {}
        for name, classes in self.scene_fields.items():
            scene[name], confidence[name] = self._pick(classes, probs[name][i])
        objects = []
        for s, position in enumerate(SLOTS):
            kind, conf = self._pick(self.slot_fields["kind"], probs["kind"][i, s])
            confidence[f"{position}.kind"] = conf
            if kind is None:
                continue
            got: dict[str, str | None] = {"kind": kind}
            obj_conf = {"kind": conf}
            # A checker trained before faces had an identity has no FACE_ONLY heads.
            for name in self.slot_fields:
                if name != "kind" and (name not in FACE_ONLY or kind == "face"):
                    got[name], obj_conf[name] = self._pick(self.slot_fields[name],
                                                           probs[name][i, s])
            features = None
            if kind in CHARACTERS:
                hue = float(hues[i, s])
                if kind == "face":  # faces never have ears or marks
                    got["ears"] = got["marks"] = "none"
                identity = {name: got[name] for name in FACE_ONLY if name in got}
                features = Features(hue, got["eyes"], got["ears"], got["mouth"], got["marks"],
                                    **identity)
                # The colour word comes from the colour head (trained on hue names), which
                # measured better than naming the regressed hue near the bands' edges.
            pattern = got["pattern"] if kind not in CHARACTERS else None
            objects.append(ObjectReading(
                kind, got["colour"], got["size"], position, pattern,
                got["pattern_colour"] if pattern else None, features, obj_conf))
        return Reading(scene["background"], scene["style"], tuple(objects), confidence)


# ---------------------------------------------------------------------------------------------
# What a diffusion model's VAE does to pictures: used to train robustness and to measure it


def jpeg(images: np.ndarray, rng: random.Random, probability: float,
         quality: tuple[int, int] = (35, 90)) -> np.ndarray:
    """JPEG-compress a random subset of (B, H, W, 3) uint8 images at random qualities."""
    out = images.copy()
    for i in range(len(out)):
        if rng.random() < probability:
            buf = io.BytesIO()
            Image.fromarray(out[i]).save(buf, "JPEG", quality=rng.randint(*quality))
            out[i] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def degrade(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0,
            clean_fraction: float = 0.2) -> torch.Tensor:
    """Randomly soften a batch in [-1, 1] the way a VAE round trip might.

    Per image: down/up-sampling, a slight Gaussian blur, a 1-2 px shift, a small colour jitter
    (per-channel gain and offset) and pixel noise; `clean_fraction` of images are left as is.
    """
    b, c, h, w = x.shape

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    out = x.clone()
    resample = torch.rand(b, generator=gen) < 0.35 * strength
    for i in torch.nonzero(resample).flatten().tolist():
        small = int(torch.randint(32, 57, (1,), generator=gen))
        down = F.interpolate(out[i:i + 1], size=(small, small), mode="bilinear", antialias=True,
                             align_corners=False)
        out[i:i + 1] = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
    # Gaussian blur, a different sigma per image, as one grouped separable convolution.
    sigma = uniform(0.05, 0.9 * strength + 0.05, b)
    taps = torch.arange(-2, 3, dtype=x.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (b*c, 5)
    flat = out.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kernel[:, None, None, :],
                    groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2), mode="replicate"), kernel[:, None, :, None],
                    groups=b * c)
    out = flat.view(b, c, h, w)
    # Shifts of up to 2 px, edges replicated.
    pad = 2
    padded = F.pad(out, (pad, pad, pad, pad), mode="replicate")
    shifts = torch.randint(-pad, pad + 1, (b, 2), generator=gen)
    if strength <= 0:
        shifts.zero_()
    out = torch.stack([padded[i, :, pad + dy:pad + dy + h, pad + dx:pad + dx + w]
                       for i, (dx, dy) in enumerate(shifts.tolist())])
    gain = 1 + uniform(-0.05, 0.05, b, c, 1, 1) * strength
    offset = uniform(-0.05, 0.05, b, c, 1, 1) * strength
    noise = torch.randn(out.shape, generator=gen) * uniform(0, 0.04, b, 1, 1, 1) * strength
    out = ((out + 1) * gain - 1 + offset + noise).clamp(-1, 1)
    keep = (torch.rand(b, generator=gen) < clean_fraction).view(b, 1, 1, 1)
    return torch.where(keep, x, out)


# ---------------------------------------------------------------------------------------------
# Measurement


@torch.no_grad()
def vae_round_trip(images: np.ndarray, model_folder: str | Path, batch: int = 250) -> np.ndarray:
    """(B, H, W, 3) uint8 images as they come back from a diffusers model's VAE (latent mean).

    What a generated picture looks like is what the VAE can give back, so the checker is
    trained and measured on these as well as on the renderings themselves.
    """
    from diffusers import AutoencoderKL  # only this needs diffusers; reading never does

    vae = AutoencoderKL.from_pretrained(Path(model_folder) / "vae").float().eval()
    out = np.empty_like(images)
    for start in range(0, len(images), batch):
        x = uint8_to_tensor(images[start:start + batch])
        y = vae.decode(vae.encode(x).latent_dist.mean).sample
        out[start:start + batch] = tensor_to_uint8(y)
    return out


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def evaluate(checker: Checker, count: int, degraded: bool = False, seed: int = 0,
             through_vae: str | Path | None = None) -> dict:
    """Agreement of the checker (and captioner) with the renderer on `count` held-out scenes
    (`through_vae`: a diffusers model folder whose VAE round trip the renderings go through).
    Their faces have an identity when the checker has heads to read one."""
    from world.render import render

    identities = all(name in checker.slot_fields for name in FACE_ONLY)
    scenes = [split_scene("eval", i, identities=identities) for i in range(count)]
    images = [render(s).image for s in scenes]
    if through_vae is not None:
        arr = vae_round_trip(np.stack([np.asarray(im) for im in images]), through_vae)
        images = [Image.fromarray(a) for a in arr]
    if degraded:
        rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
        arr = jpeg(np.stack([np.asarray(im) for im in images]), rng, 0.4)
        x = degrade(uint8_to_tensor(arr), gen, clean_fraction=0.0)
        images = [Image.fromarray(a) for a in tensor_to_uint8(x)]
    readings = checker.read(images)
    fields: dict[str, list[bool]] = defaultdict(list)
    by_style: dict[str, list[bool]] = defaultdict(list)
    scene_exact, caption_exact = [], []
    for reading, scene in zip(readings, scenes, strict=True):
        agree = agreement(reading, scene)
        for key, ok in agree.items():
            fields[key.split(".")[-1]].append(ok)
        scene_exact.append(all(agree.values()))
        ok = caption(reading.to_scene()) == caption(scene)
        caption_exact.append(ok)
        by_style[scene.style or "none"].append(ok)
    return {
        "fields": {k: (float(np.mean(v)), len(v)) for k, v in fields.items()},
        "scene_exact": float(np.mean(scene_exact)),
        "caption_exact": float(np.mean(caption_exact)),
        "caption_exact_by_style": {k: (float(np.mean(v)), len(v)) for k, v in by_style.items()},
    }


def print_report(report: dict) -> None:
    """Print an evaluate() report as a small table."""
    print(f"{'field':<16}{'agreement':>10}{'n':>8}")
    for name, (value, n) in report["fields"].items():
        print(f"{name:<16}{value:>10.4f}{n:>8}")
    print(f"{'scene exact':<16}{report['scene_exact']:>10.4f}")
    print(f"{'caption exact':<16}{report['caption_exact']:>10.4f}")
    for style, (value, n) in report["caption_exact_by_style"].items():
        print(f"  caption exact, style {style:<9}{value:>8.4f}{n:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the checker against the renderer.")
    parser.add_argument("--eval", type=int, default=500, metavar="N", help="held-out scenes")
    parser.add_argument("--model", default=str(DEFAULT_FOLDER), help="captioner folder")
    parser.add_argument("--degrade", action="store_true", help="VAE-like degraded images")
    parser.add_argument("--through-vae", metavar="MODEL", default=None,
                        help="read the renderings after this diffusers model's VAE round trip")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = evaluate(Checker.load(args.model), args.eval, degraded=args.degrade,
                      through_vae=args.through_vae)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()

