"""The person kind's learning objective: the loss lies on the portrait's head and shoulders,
found by OpenCV's face detector (and cut to a segmenter's mask), never on the room; on the tiny
random SD model with drawn portraits whose face is where the test put it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image

from engine.config import ConceptSettings
from engine.errors import ModelLoadError
from engine.faces import (
    CascadeFaceFinder,
    PersonFinder,
    head_and_shoulders,
    load_face_finder,
    upper_part,
)
from engine.textual_inversion import Draws, focused_loss, learn_concept, template_ids, training_set
from tests.pictures import portrait

pytest.importorskip("cv2")  # the `faces` extra (also in dev)

FAST = ConceptSettings(steps=4, learning_rate=0.05, batch_size=3, vectors=2, augment=2,
                       early_stop_window=0)


def portraits() -> list[Image.Image]:
    """Three portraits of one face on the photo's right half, on three backgrounds."""
    return [portrait((170 + dx, 100), 76, background=bg)
            for dx, bg in ((0, (90, 140, 200)), (6, (200, 200, 120)), (-6, (120, 190, 120)))]


class BodyOnly:
    """A segmenter that knows the drawn person: everything not the portrait's background."""

    def mask(self, image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB"), np.float32)
        corner = pixels[2, 2]
        return (np.abs(pixels - corner).sum(-1) > 40).astype(np.float32)


def test_the_detector_finds_the_drawn_face_and_the_mask_grows_to_head_and_shoulders():
    finder = CascadeFaceFinder()
    image = portrait((170, 110), 64)  # face 64 x 83 px; hair from y 60; body from x 80
    (left, top, right, bottom), *_ = finder.faces(image)
    assert 160 <= (left + right) / 2 <= 180 and 100 <= (top + bottom) / 2 <= 120
    assert finder.faces(Image.new("RGB", (256, 256), (90, 140, 200))) == []

    mask = PersonFinder(faces=finder).mask(image)
    assert mask.shape == (256, 256)
    assert mask[110, 170] == 1  # the face
    assert mask[65, 170] == 1  # the hair above it
    assert mask[200, 170] == 1 and mask[200, 120] == 1  # the shoulders below it
    assert mask[:150, :90].sum() == 0 and mask[:30].sum() == 0  # the room beside and above
    # as big as a head and shoulders: more than the face box, far less than the picture
    face_area = (right - left) * (bottom - top)
    assert 2 * face_area < mask.sum() < 0.45 * mask.size


def test_a_segmenter_cuts_the_region_to_the_persons_own_pixels():
    image = portrait((170, 110), 80)
    region = PersonFinder(faces=CascadeFaceFinder()).mask(image)
    cut = PersonFinder(faces=CascadeFaceFinder(), segmenter=BodyOnly()).mask(image)
    background = BodyOnly().mask(image) == 0
    assert region[background].sum() > 0 and cut[background].sum() == 0
    assert cut[110, 170] == 1
    # a segmenter alone: the person down to head-and-shoulders height, not the whole figure
    tall = np.zeros((200, 100), np.float32)
    tall[20:200, 30:70] = 1
    kept = upper_part(tall)
    assert kept[20:60, 30:70].all() and kept[61:].sum() == 0
    alone = PersonFinder(segmenter=BodyOnly()).mask(image)
    assert alone is not None and alone[background].sum() == 0 and alone[110, 170] == 1
    assert PersonFinder().mask(image) is None


def test_head_and_shoulders_stays_inside_the_picture():
    mask = head_and_shoulders((0, 0, 40, 40), (64, 48))
    assert mask.shape == (48, 64) and mask.max() == 1 and mask[0, 63] == 0


def test_the_person_kinds_views_are_weighted_on_the_head_not_the_room(tiny_model):
    people = PersonFinder(faces=CascadeFaceFinder())
    data = training_set(tiny_model, portraits(), "person", FAST, people=people)
    assert data.focus == "head and shoulders" and bool(data.has_mask.all())
    side = data.masks.shape[-1]
    photo, mirror = data.masks[0], data.masks[1]  # each photo's first two views
    assert photo[:, side // 2:].sum() > 4 * photo[:, : side // 4].sum()
    assert float(photo[0].max()) < 0.05  # the sky above the head
    torch.testing.assert_close(mirror, photo.flip(-1), atol=0.05, rtol=0)
    # an object's photos, and a person's without a finder, keep the word's attention
    assert training_set(tiny_model, portraits(), "object", FAST, people=people).focus == \
        "word attention"
    assert training_set(tiny_model, portraits(), "person", FAST).focus == "word attention"
    # a photo with nobody in it: its views fall back to the word's attention
    mixed = portraits()[:2] + [Image.new("RGB", (256, 256), (90, 140, 200))]
    some = training_set(tiny_model, mixed, "person", FAST, people=people)
    assert some.focus == "word attention" and some.has_mask.tolist() == [True] * 4 + [False] * 2


def gradient(model, data, draws, ids, slots, vectors, perturb) -> torch.Tensor:
    """d loss / d vectors with `perturb` (B, C, h, w) added to the UNet's prediction."""
    vectors = vectors.clone().requires_grad_(True)

    def shift(module, inputs, output):
        output.sample = output.sample + perturb
        return output

    handle = model.unet.register_forward_hook(shift)
    try:
        focused_loss(model, DDIMScheduler.from_config(model.scheduler.config), data, draws, ids,
                     slots, vectors).backward()
    finally:
        handle.remove()
    return vectors.grad


def test_errors_on_the_room_do_not_move_a_persons_word_and_errors_on_the_head_do(tiny_model):
    data = training_set(tiny_model, portraits(), "person", FAST,
                        people=PersonFinder(faces=CascadeFaceFinder()))
    texts = sorted({c for captions in data.captions for c in captions})
    ids, slots = template_ids(tiny_model, texts, 2)
    choices = [[texts.index(c) for c in captions] for captions in data.captions]
    noise = torch.randn((3, *data.latents.shape[1:]), generator=torch.Generator().manual_seed(3))
    draws = Draws(torch.tensor([0, 2, 4]), torch.tensor([0, 1, 2]),
                  torch.tensor([100, 400, 700]), noise)
    assert all(int(c) in choices[int(v)] for v, c in zip(draws.views, draws.captions, strict=True))
    vectors = torch.randn(2, tiny_model.text_width, generator=torch.Generator().manual_seed(1))
    side = data.latents.shape[-1]
    room = (data.masks[draws.views] == 0).float()[:, None].expand(-1, 4, -1, -1)
    assert room.sum() > 0
    none = torch.zeros(3, 4, side, side)
    base = gradient(tiny_model, data, draws, ids, slots, vectors, none)
    assert base.abs().sum() > 0
    torch.testing.assert_close(gradient(tiny_model, data, draws, ids, slots, vectors,
                                        5.0 * room), base)
    head = (data.masks[draws.views] > 0.9).float()[:, None].expand(-1, 4, -1, -1)
    assert not torch.allclose(gradient(tiny_model, data, draws, ids, slots, vectors, 5.0 * head),
                              base)


def test_a_person_is_learned_with_the_finder_and_says_so(tiny_model):
    people = PersonFinder(faces=CascadeFaceFinder())
    learned = learn_concept(tiny_model, portraits(), "anna", "person",
                            replace(FAST, steps=3), people=people)
    assert learned.focus == "head and shoulders" and learned.steps == 3
    assert learned.concept.kind == "person"


def test_the_face_detector_setting():
    assert load_face_finder("") is None and load_face_finder(" none ") is None
    assert isinstance(load_face_finder("opencv"), CascadeFaceFinder)
    with pytest.raises(ModelLoadError, match="face_detector"):
        load_face_finder("no/such/cascade.xml")
