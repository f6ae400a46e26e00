"""Deterministic renderer of sticker-world scenes, with each object's ground-truth mask.

Scenes are drawn at twice the output size and box-filtered down, so edges are anti-aliased the
same way every time; the same description always gives the same pixels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from world.scene import HAIR_COLOURS, POSITIONS, SIZES, Features, Scene, WorldObject, hue_rgb

SUPERSAMPLE = 2


@dataclass
class Rendering:
    """A rendered scene: the RGB image and, per object position, its visible-area mask (0..1)."""

    image: Image.Image
    masks: dict[str, np.ndarray]


def render(scene: Scene, size: int = 64) -> Rendering:
    """Draw a scene at `size` x `size` pixels."""
    big = size * SUPERSAMPLE
    canvas = _background(scene.background, big, scene.seed)
    layers = []
    for obj in scene.objects:
        layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        _draw_object(ImageDraw.Draw(layer), obj, big)
        if obj.pattern:
            layer = _apply_pattern(layer, obj, big)
        canvas.alpha_composite(layer)
        layers.append((obj.position, np.asarray(layer.getchannel("A"), dtype=np.float32) / 255))
    masks = {}
    for i, (position, alpha) in enumerate(layers):
        visible = alpha.copy()
        for _, later in layers[i + 1:]:
            visible *= 1.0 - later
        masks[position] = _downsample(visible, size)
    image = canvas.convert("RGB").resize((size, size), Image.BOX)
    if scene.style:
        image = apply_style(image, scene.style, union_mask(masks, size))
    return Rendering(image, masks)


def ear_mask(scene: Scene, size: int = 64) -> np.ndarray:
    """Where the scene's creatures' ears are or would be, in either shape (0..1): the pixels
    that tell round ears from pointy ones and from none, a few of a scene's, which the trainer
    can weigh more (`TrainConfig.ear_loss_weight`). Zeros for a scene without creatures."""
    ears = np.zeros((size, size), np.float32)
    for obj in scene.objects:
        if obj.kind == "creature" and obj.features is not None:
            either = np.maximum(_mask_with_ears(scene, obj, "round", size),
                                _mask_with_ears(scene, obj, "pointy", size))
            ears = np.maximum(ears, np.clip(either - _mask_with_ears(scene, obj, "none", size),
                                            0, 1))
    return ears


def _mask_with_ears(scene: Scene, creature: WorldObject, ears: str, size: int) -> np.ndarray:
    """The creature's visible mask in the unstyled scene, drawn with `ears`."""
    changed = replace(creature, features=replace(creature.features, ears=ears))
    objects = tuple(changed if obj is creature else obj for obj in scene.objects)
    return render(replace(scene, objects=objects, style=None), size).masks[creature.position]


def union_mask(masks: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Where any object is (0..1): the union of a rendering's object masks."""
    return np.clip(sum(masks.values(), np.zeros((size, size), np.float32)), 0, 1)


def _downsample(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.BOX), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Backgrounds


def _background(name: str, size: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGBA", (size, size))
    d = ImageDraw.Draw(img)
    s = size / 128
    if name == "grass":
        horizon = int(size * rng.uniform(0.35, 0.45))
        d.rectangle([0, 0, size, horizon], fill=(150, 200, 240))
        d.rectangle([0, horizon, size, size], fill=(95, 175, 70))
        for _ in range(10):
            x, y = rng.uniform(0, size), rng.uniform(horizon + 6 * s, size)
            d.line([x, y, x + 2 * s, y - 6 * s], fill=(60, 130, 45), width=max(1, int(2 * s)))
    elif name == "sky":
        d.rectangle([0, 0, size, size], fill=(120, 185, 245))
        for _ in range(3):
            x, y = rng.uniform(0, size), rng.uniform(0, size * 0.9)
            w, h = rng.uniform(18, 30) * s, rng.uniform(7, 11) * s
            d.ellipse([x - w, y - h, x + w, y + h], fill=(250, 250, 252))
    elif name == "sand":
        d.rectangle([0, 0, size, size], fill=(232, 205, 150))
        for _ in range(25):
            x, y, r = rng.uniform(0, size), rng.uniform(0, size), 1.5 * s
            d.ellipse([x - r, y - r, x + r, y + r], fill=(200, 170, 115))
    elif name == "night":
        d.rectangle([0, 0, size, size], fill=(20, 25, 60))
        for _ in range(14):
            x, y, r = rng.uniform(0, size), rng.uniform(0, size), 1.5 * s
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 245, 200))
    elif name == "snow":
        d.rectangle([0, 0, size, size], fill=(215, 228, 240))
        d.rectangle([0, int(size * 0.7), size, size], fill=(250, 252, 255))
        for _ in range(16):
            x, y, r = rng.uniform(0, size), rng.uniform(0, size * 0.7), 2 * s
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
    elif name == "brick":
        d.rectangle([0, 0, size, size], fill=(200, 195, 185))
        rows, offset = 8, rng.uniform(0, 32 * s)
        h = size / rows
        for row in range(rows):
            shift = offset + (16 * s if row % 2 else 0)
            x = -32 * s + shift % (32 * s)
            while x < size:
                d.rectangle([x + s, row * h + s, x + 32 * s - s, (row + 1) * h - s],
                            fill=(165, 70, 50))
                x += 32 * s
    else:
        raise ValueError(f"unknown background {name!r}")
    return img


# ---------------------------------------------------------------------------------------------
# Objects


def _geometry(obj: WorldObject, size: int) -> tuple[float, float, float]:
    dx, dy, scale = obj.jitter
    r = SIZES[obj.size] * size * scale / 2
    cx = (POSITIONS[obj.position] + dx) * size
    cy = (0.55 + dy) * size
    return cx, cy, r


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        a = r * 0.85
        return [(cx - a, cy - a), (cx + a, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    if kind == "triangle":
        return [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]
    if kind == "diamond":
        return [(cx, cy - r), (cx + 0.72 * r, cy), (cx, cy + r), (cx - 0.72 * r, cy)]
    if kind == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            ang = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + 0.05 * r + rad * math.sin(ang)))
        return pts
    if kind == "heart":
        pts = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((cx + x * r / 16, cy - 0.1 * r - y * r / 16))
        return pts
    raise ValueError(f"not a polygon shape: {kind!r}")


def _draw_object(d: ImageDraw.ImageDraw, obj: WorldObject, size: int) -> None:
    cx, cy, r = _geometry(obj, size)
    fill = obj.rgb + (255,)
    if obj.kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif obj.kind in ("creature", "face"):
        _draw_character(d, obj.kind, obj.features, cx, cy, r)
    else:
        d.polygon(_polygon(obj.kind, cx, cy, r), fill=fill)


def _apply_pattern(layer: Image.Image, obj: WorldObject, size: int) -> Image.Image:
    cx, cy, r = _geometry(obj, size)
    pattern = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(pattern)
    if obj.pattern == "stripes":
        band = 2 * r / 5
        for i in range(1, 5, 2):
            d.rectangle([0, cy - r + i * band, size, cy - r + (i + 1) * band], fill=255)
    elif obj.pattern == "dots":
        q = r * 0.22
        for ox, oy in ((-0.4, -0.3), (0.4, -0.3), (0.0, 0.3)):
            x, y = cx + ox * r, cy + oy * r
            d.ellipse([x - q, y - q, x + q, y + q], fill=255)
    elif obj.pattern == "split":
        d.rectangle([0, 0, cx, size], fill=255)
    colour = Image.new("RGBA", (size, size), tuple(obj.pattern_rgb) + (255,))
    alpha = layer.getchannel("A")
    combined = Image.composite(colour, layer, pattern)
    combined.putalpha(alpha)
    return combined


def _draw_character(d: ImageDraw.ImageDraw, kind: str, f: Features, cx: float, cy: float,
                    r: float) -> None:
    body = hue_rgb(f.hue) + (255,)
    dark = hue_rgb(f.hue, 0.8, 0.55) + (255,)
    light = hue_rgb(f.hue, 0.25, 1.0) + (255,)
    ink = (20, 20, 25, 255)
    if kind == "creature":
        top = cy - 0.7 * r
        if f.ears == "round":
            for sx in (-1, 1):
                ex, er = cx + sx * 0.6 * r, 0.3 * r
                d.ellipse([ex - er, top - er, ex + er, top + er], fill=body)
        elif f.ears == "pointy":
            for sx in (-1, 1):
                ex = cx + sx * 0.55 * r
                d.polygon([(ex - 0.25 * r, top + 0.2 * r), (ex + sx * 0.15 * r, top - 0.45 * r),
                           (ex + 0.25 * r, top + 0.2 * r)], fill=body)
        d.ellipse([cx - r, top, cx + r, cy + r], fill=body)
        if f.marks == "spots":
            for ox, oy in ((-0.5, 0.45), (0.55, 0.35), (0.0, 0.7)):
                q = 0.14 * r
                d.ellipse([cx + ox * r - q, cy + oy * r - q, cx + ox * r + q, cy + oy * r + q],
                          fill=dark)
        elif f.marks == "belly":
            d.ellipse([cx - 0.5 * r, cy + 0.15 * r, cx + 0.5 * r, cy + 0.95 * r], fill=light)
        eye_y, mouth_y = cy - 0.2 * r, cy + 0.2 * r
    else:
        eye_y, mouth_y = cy - 0.05 * r, cy + 0.45 * r
        _draw_head(d, f, cx, cy, r, body, dark, mouth_y)
    for sx in (-1, 1):
        ex = cx + sx * 0.38 * r
        if f.eyes == "big":
            q = 0.24 * r * f.eye_size
            d.ellipse([ex - q, eye_y - q, ex + q, eye_y + q], fill=(255, 255, 255, 255))
            p = q * 0.5
            d.ellipse([ex - p, eye_y - p, ex + p, eye_y + p], fill=ink)
        elif f.eyes == "dots":
            q = 0.11 * r * f.eye_size
            d.ellipse([ex - q, eye_y - q, ex + q, eye_y + q], fill=ink)
        else:  # sleepy
            q = 0.18 * r * f.eye_size
            d.line([ex - q, eye_y, ex + q, eye_y], fill=ink, width=max(1, int(0.08 * r)))
    if kind == "face" and f.glasses == "round":
        _draw_glasses(d, cx, eye_y, r, ink)
    w = 0.3 * r
    if f.mouth == "smile":
        d.arc([cx - w, mouth_y - w, cx + w, mouth_y + w * 0.6], 20, 160, fill=ink,
              width=max(1, int(0.08 * r)))
    elif f.mouth == "open":
        d.ellipse([cx - 0.2 * r, mouth_y - 0.05 * r, cx + 0.2 * r, mouth_y + 0.3 * r],
                  fill=(120, 20, 30, 255))
    else:
        d.line([cx - w, mouth_y + 0.1 * r, cx + w, mouth_y + 0.1 * r], fill=ink,
               width=max(1, int(0.08 * r)))


def _draw_head(d: ImageDraw.ImageDraw, f: Features, cx: float, cy: float, r: float,
               skin: tuple[int, ...], dark: tuple[int, ...], mouth_y: float) -> None:
    """A face without its eyes and mouth: long hair behind it, the head, hair on top and a
    beard around the mouth. Each part is a few latent pixels wide at the small size, so the
    VAE keeps it (see the model card's fine-through-VAE figure)."""
    hair = HAIR_COLOURS[f.hair_colour] + (255,) if f.hair_colour is not None else dark
    if f.hair == "long":  # falls behind the head down to the shoulders
        d.ellipse([cx - 1.2 * r, cy - 1.12 * r, cx + 1.2 * r, cy + 0.5 * r], fill=hair)
        d.rectangle([cx - 1.2 * r, cy - 0.3 * r, cx + 1.2 * r, cy + 1.05 * r], fill=hair)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=skin)
    if f.hair == "spiky":
        for i in range(5):
            x = cx + (i - 2) * 0.42 * r
            tip = (x, cy - 1.45 * r)
            d.polygon([(x - 0.3 * r, cy - 0.6 * r), tip, (x + 0.3 * r, cy - 0.6 * r)], fill=hair)
    if f.hair != "bald":
        d.chord([cx - r, cy - r, cx + r, cy + 0.1 * r], 180, 360, fill=hair)
    if f.beard == "full":
        d.chord([cx - 0.98 * r, cy - 0.45 * r, cx + 0.98 * r, cy + 1.08 * r], 0, 180, fill=hair)
        d.ellipse([cx - 0.4 * r, mouth_y - 0.2 * r, cx + 0.4 * r, mouth_y + 0.28 * r],
                  fill=skin)


def _draw_glasses(d: ImageDraw.ImageDraw, cx: float, eye_y: float, r: float,
                  ink: tuple[int, ...]) -> None:
    """Two thick round rims around the eyes and a bridge between them."""
    width = max(2, round(0.15 * r))
    q = 0.34 * r
    for sx in (-1, 1):
        ex = cx + sx * 0.4 * r
        d.ellipse([ex - q, eye_y - q, ex + q, eye_y + q], outline=ink, width=width)
    d.line([cx - 0.4 * r + q, eye_y, cx + 0.4 * r - q, eye_y], fill=ink, width=width)


# ---------------------------------------------------------------------------------------------
# Styles


def apply_style(image: Image.Image, style: str, objects_mask: np.ndarray | None = None
                ) -> Image.Image:
    """Restyle a whole picture; `objects_mask` (0..1) lets 'outline' ink the objects' edges."""
    size = image.size[0]
    arr = np.asarray(image, dtype=np.float32)
    if style == "pixel":
        return image.resize((size // 4, size // 4), Image.BOX).resize((size, size), Image.NEAREST)
    if style == "pastel":
        arr = 0.5 * arr + 0.5 * 255
    elif style == "outline":
        if objects_mask is None:
            objects_mask = np.zeros(arr.shape[:2], np.float32)
        m = Image.fromarray((objects_mask > 0.5).astype(np.uint8) * 255)
        ring = np.asarray(m.filter(ImageFilter.MaxFilter(5)), np.float32) / 255
        ring = np.clip(ring - np.asarray(m.filter(ImageFilter.MinFilter(3)), np.float32) / 255,
                       0, 1)
        arr = arr * (1 - ring[..., None]) + 15 * ring[..., None]
    elif style == "sepia":
        grey = arr @ np.array([0.299, 0.587, 0.114], np.float32)
        arr = grey[..., None] / 255 * np.array([240, 200, 145], np.float32) + 15
    elif style == "duotone":
        grey = (arr @ np.array([0.299, 0.587, 0.114], np.float32))[..., None] / 255
        dark, light = np.array([25, 55, 95], np.float32), np.array([250, 150, 175], np.float32)
        arr = dark + grey * (light - dark)
    else:
        raise ValueError(f"unknown style {style!r}")
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
