"""Where a portrait's person is: a face found by a detector, grown to head and shoulders.

A person's word should learn the face and shoulders, never the room behind them. Learning an
object weights its loss by the subject's mask from the model's captioner, else by the word's
own cross-attention (engine/textual_inversion.py). For a person neither is enough on real
photos: real Stable Diffusion folders ship no captioner, and a new word's attention starts
from its starting words, vague and spread over the whole picture, so the room is in the loss
until the word has already learned much of it. A face detector instead knows where the face is
from the first step, whatever the word has learned, on any photo.

The detector is OpenCV's frontal-face cascade (Viola-Jones, `opencv-python-headless` below 5,
the `faces` extra): its model file is inside the wheel, so nothing is fetched at run time; it
needs only numpy, runs in milliseconds on a CPU and takes no GPU memory. Heavier detectors
(MediaPipe's, with its many dependencies; OpenCV's YuNet, whose ONNX file no package ships)
would find turned faces too, but a portrait for learning a person is mostly frontal, and a view
in which no face is found simply falls back to the word's attention.

The face box is grown to the head (hair above, ears beside, the chin below) and the shoulders
beneath it; with a segmenter (engine/segmentation.py) the region is cut to the person's own
pixels, so the wall between hair and shoulders is left out too. Without a detector, a segmenter
alone gives the person's mask down to head-and-shoulders height.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.attention_places import Box, connected_parts
from engine.errors import ModelLoadError
from engine.segmentation import Segmenter

FaceBox = tuple[int, int, int, int]  # left, top, right, bottom, in pixels
# Around a face box (its width w, height h): the head reaches this far above it (hair), beside
# it (ears, hair) and below it (chin, neck); the shoulders are an ellipse this wide and this
# far below the chin.
HAIR_ABOVE = 0.35
HEAD_BESIDE = 0.2
NECK_BELOW = 0.35
SHOULDERS_WIDE = 2.8
SHOULDERS_BELOW = 1.4
MIN_FACE_SHARE = 0.04  # a face narrower than this share of the photo's shorter side is noise
# Telling people apart in a segmenter's mask (`segmented_people`): it is parted at most this
# many pixels wide; parts smaller than MIN_PERSON of the largest are specks; a person's head
# and shoulders are about PERSON_ASPECT times as wide as tall, so a part as wide as n of them is
# n people side by side, cut apart at its narrowest columns near the even cuts.
PARTING_SIDE = 128
MIN_PERSON = 0.2
PERSON_ASPECT = 1.0


@runtime_checkable
class FaceFinder(Protocol):
    """What a face detector supplies."""

    def faces(self, image: Image.Image) -> list[FaceBox]:
        """The boxes of the faces in a picture, in pixels, largest first."""


class CascadeFaceFinder:
    """OpenCV's Viola-Jones face cascade as a FaceFinder."""

    def __init__(self, cascade_file: str | Path | None = None):
        try:
            import cv2
        except ImportError as exc:
            raise ModelLoadError("the OpenCV face detector needs opencv-python-headless "
                                 "(pip install 'oneword[faces]')") from exc
        if not hasattr(cv2, "CascadeClassifier"):
            raise ModelLoadError(f"OpenCV {cv2.__version__} has no face cascade; "
                                 "install opencv-python-headless below 5")
        path = Path(cascade_file) if cascade_file else (
            Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise ModelLoadError(f"no face cascade could be read from {path}")
        self._cv2 = cv2

    def faces(self, image: Image.Image) -> list[FaceBox]:
        """Frontal faces at least MIN_FACE_SHARE of the shorter side wide, largest first."""
        cv2 = self._cv2
        gray = cv2.equalizeHist(np.asarray(image.convert("L")))
        least = max(16, round(MIN_FACE_SHARE * min(image.size)))
        found = self.classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4,
                                                 minSize=(least, least))
        boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def load_face_finder(setting: str) -> FaceFinder | None:
    """The detector the `face_detector` setting names: "" or "none" none, "opencv" OpenCV's
    frontal-face cascade, "auto" that cascade when OpenCV is installed (else none), or the path
    of a cascade file of one's own. One named that cannot be loaded raises ModelLoadError."""
    value = setting.strip()
    if value.lower() in ("", "none"):
        return None
    if value.lower() == "auto":
        try:
            return CascadeFaceFinder()
        except ModelLoadError:
            return None
    if value.lower() == "opencv":
        return CascadeFaceFinder()
    if not Path(value).is_file():
        raise ModelLoadError(f"face_detector: {value!r} is neither 'opencv' nor a cascade file")
    return CascadeFaceFinder(value)


def head_and_shoulders(box: FaceBox, size: tuple[int, int]) -> np.ndarray:
    """(H, W) mask in {0, 1} of the head and shoulders around a face box in a picture of
    `size` (width, height): an ellipse over the face grown to hair, ears and chin, and a wider
    ellipse for the shoulders under it, cut at the picture's edges."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    centre = (left + right) / 2
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((left - HEAD_BESIDE * w, top - HAIR_ABOVE * h,
                  right + HEAD_BESIDE * w, bottom + NECK_BELOW * h), fill=1)
    chin = bottom + NECK_BELOW * h * 0.6
    half = SHOULDERS_WIDE * w / 2
    draw.ellipse((centre - half, chin, centre + half, chin + 2 * SHOULDERS_BELOW * h), fill=1)
    return np.asarray(canvas, np.float32)


@dataclass
class PersonFinder:
    """Finds where a portrait's person is: a face detector's box grown to head and shoulders,
    cut to a segmenter's mask when there is one; else the segmenter's mask alone, down to
    head-and-shoulders height. None for a photo where neither finds anybody."""

    faces: FaceFinder | None = None
    segmenter: Segmenter | None = None

    def mask(self, image: Image.Image) -> np.ndarray | None:
        """(H, W) in [0, 1] at the picture's size, 1 on the person's head and shoulders."""
        person = self._segmented(image)
        if self.faces is not None:
            boxes = self.faces.faces(image)
            if boxes:
                region = head_and_shoulders(boxes[0], image.size)
                return region * person if person is not None else region
        if person is None:
            return None
        return upper_part(person)

    def people(self, image: Image.Image) -> list[FaceBox]:
        """The head-and-shoulders boxes of everyone in a (group) photo, in pixels: each face
        the detector finds (`portrait_box`, cut to the segmenter's mask when there is one),
        and each person the segmenter's mask shows that no found face accounts for
        (`segmented_people`): a detector misses turned, small or drawn faces, a segmenter
        alone merges people who touch. Empty when neither finds anybody."""
        person = self._segmented(image)
        found = []
        if self.faces is not None:
            for face in self.faces.faces(image):
                box = portrait_box(face, image.size)
                found.append(_cut_to(person, box) if person is not None else box)
        if person is not None:
            found += [box for box in segmented_people(person)
                      if not any(_overlap(box, other) > 0.5 * _box_area(box) for other in found)]
        return found

    def _segmented(self, image: Image.Image) -> np.ndarray | None:
        if self.segmenter is None:
            return None
        mask = np.clip(np.asarray(self.segmenter.mask(image), np.float32), 0, 1)
        if mask.shape != (image.height, image.width) or (mask > 0.5).sum() < 0.001 * mask.size:
            return None  # nobody found, or a mask of the wrong size: no help
        return mask


def portrait_box(box: FaceBox, size: tuple[int, int]) -> FaceBox:
    """The square-ish box a head-and-shoulders portrait of a face fills, cut at the picture's
    edges: half a face width beside it, the hair above, one face height of shoulders below.
    The face then fills about the share of it that it fills of a portrait learned from, so a
    person drawn in such a box comes out at the size of the face it was measured on."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    width, height = size
    return (max(0, round(left - w / 2)), max(0, round(top - HAIR_ABOVE * h)),
            min(width, round(right + w / 2)), min(height, round(bottom + h)))


def people_parts(people: PersonFinder, image: Image.Image, side: int) -> list[Box]:
    """The head-and-shoulders boxes (`PersonFinder.people`) of the people in a square picture,
    in the (top, left, bottom, right) pixels of a (side, side) attention map of it
    (engine/attention_places.py): what someone added to a group photo is measured against and
    kept clear of, and which of them is "the left man"."""
    scale = side / image.width
    boxes = []
    for left, top, right, bottom in people.people(image):
        boxes.append((int(top * scale), int(left * scale),
                      max(int(top * scale) + 1, round(bottom * scale)),
                      max(int(left * scale) + 1, round(right * scale))))
    return boxes


def upper_part(mask: np.ndarray) -> np.ndarray:
    """A person's mask cut below head-and-shoulders height: a head-and-shoulders crop is about
    as tall as it is wide, so the rows from the mask's top down by its width are kept."""
    rows = np.flatnonzero((mask > 0.5).any(1))
    cols = np.flatnonzero((mask > 0.5).any(0))
    if not len(rows):
        return mask
    keep = rows[0] + (cols[-1] - cols[0] + 1)
    cut = mask.copy()
    cut[keep:] = 0
    return cut


def segmented_people(mask: np.ndarray) -> list[FaceBox]:
    """The (left, top, right, bottom) pixel boxes of the people in a segmenter's (H, W) mask,
    largest first: each connected part (specks left out), a part as wide as n people's head
    and shoulders (PERSON_ASPECT) split into n at its narrowest columns, as people side by
    side touch at their shoulders or cheeks, each cut to head-and-shoulders height."""
    height, width = mask.shape
    scale = min(1.0, PARTING_SIDE / max(height, width))
    small = np.asarray(Image.fromarray((mask > 0.5).astype(np.uint8) * 255).resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.NEAREST)) > 127
    people = []
    for top, left, bottom, right in connected_parts(torch.from_numpy(small)):
        inside = small[top:bottom, left:right]
        for start, end in _side_by_side(inside):
            rows = np.flatnonzero(inside[:, start:end].any(1))
            tall = min(rows[-1] + 1 - rows[0], round((end - start) / PERSON_ASPECT))
            people.append((left + start, top + rows[0], left + end, top + rows[0] + tall))
    largest = max(map(_box_area, people), default=0)
    people = sorted((box for box in people if _box_area(box) >= MIN_PERSON * largest),
                    key=_box_area, reverse=True)
    return [(int(left / scale), int(top / scale), min(width, round(right / scale)),
             min(height, round(bottom / scale))) for left, top, right, bottom in people]


def _side_by_side(part: np.ndarray) -> list[tuple[int, int]]:
    """The column ranges of the people side by side in one connected part (its box's mask):
    as many as its width holds heads and shoulders of its height, each cut at the column with
    the fewest mask pixels within a quarter of a person's width of an even cut."""
    rows, cols = part.shape
    count = max(1, round(cols / (rows * PERSON_ASPECT)))
    if count == 1:
        return [(0, cols)]
    profile = part.sum(0)
    reach = max(1, cols // (4 * count))
    cuts = [0]
    for k in range(1, count):
        even = round(k * cols / count)
        near = range(max(cuts[-1] + 1, even - reach), min(cols - 1, even + reach + 1))
        cuts.append(min(near, key=lambda c: (profile[c], abs(c - even))) if near else even)
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], cols], strict=True) if b > a]


def _cut_to(mask: np.ndarray, box: FaceBox) -> FaceBox:
    """`box` shrunk to the bounds of the mask's pixels inside it (itself if there are none)."""
    left, top, right, bottom = box
    inside = mask[top:bottom, left:right] > 0.5
    if not inside.any():
        return box
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    return (left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1,
            top + int(rows[-1]) + 1)


def _box_area(box: FaceBox) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _overlap(a: FaceBox, b: FaceBox) -> int:
    return _box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
