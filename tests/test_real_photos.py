"""Real photos on the tiny random SD model, with nothing of the sticker world: a captioning model
words them, a subject the caption does not name is found by its own attention (or refused with
advice), an add goes to a place the photo leaves free, and results come back at the photo's
own size with every untouched pixel the photo's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.attention_places import focus, free_place
from engine.config import EditSettings, InversionSettings
from engine.errors import InversionError, ModelLoadError, NotInPhotoError
from engine.images import Framing, fit_square, fit_whole, unfit_whole, whole_frame_box
from engine.inversion import Inversion
from engine.operations import Editor, EditRequest, source_prompt
from engine.photo_captioner import ImageToTextCaptioner, load_photo_captioner, plain_caption
from oneword.grammar import Position
from tests.pictures import test_photo
from tests.tiny_captioner import make_tiny_captioner

FAST = InversionSettings(steps=4)


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    folder = make_tiny_captioner(tmp_path_factory.mktemp("tiny-blip"))
    return load_photo_captioner(str(folder))


def editor_for(model, captioner=None, **settings) -> Editor:
    return Editor(model, captioner, FAST, replace(EditSettings(), **settings), mode="direct")


def test_a_captioning_model_words_the_photo_so_nobody_types_a_caption(tiny_model, captioner):
    assert isinstance(captioner, ImageToTextCaptioner) and load_photo_captioner("  ") is None
    caption = captioner.caption(test_photo(1, (120, 90)))
    assert caption and len(caption.split()) <= 12
    assert all(word.isalpha() and word.islower() for word in caption.split())
    editor = editor_for(tiny_model, captioner)
    inversion = editor.prepare(test_photo(1, (120, 90)))  # no caption given
    assert inversion.prompt == caption
    # what the user says the photo shows still wins
    assert editor.caption(test_photo(1), "A Dog  sitting") == "a dog sitting"
    assert captioner.subject(test_photo(1), "object") is None  # it finds no subject's mask


def test_a_captioning_model_that_cannot_load_is_a_typed_error(tmp_path):
    with pytest.raises(ModelLoadError, match="captioning model"):
        ImageToTextCaptioner(str(tmp_path / "missing"))


def test_model_captions_become_plain_prompt_words():
    assert plain_caption("arafed dog, sitting on a SOFA!") == "dog sitting on a sofa"
    assert plain_caption("") == "a photo"
    assert len(plain_caption("a " * 40).split()) == 12


def test_a_subject_the_caption_does_not_name_joins_the_source_prompt():
    request = EditRequest("replace", subject="dog", concept="cat")
    assert source_prompt("A puppy on a sofa", request) == "a puppy on a sofa with a dog"
    assert source_prompt("a dog on a sofa", request) == "a dog on a sofa"
    assert source_prompt("a sofa", EditRequest("add", concept="cat")) == "a sofa"


def test_a_subject_the_caption_lacks_is_edited_where_its_word_attends(tiny_model):
    editor = editor_for(tiny_model, subject_min_focus=0.0)  # whatever the random maps say
    photo = test_photo(3, 32)
    request = EditRequest("replace", subject="dog", concept="cat")
    prompt = editor.source_prompt(photo, request, "a photo of a man sitting")
    inversion = editor.prepare(photo, prompt)
    assert inversion.maps is not None and inversion.prompt.endswith("with a dog")
    outcome = editor.run(inversion, request)
    assert outcome.prompt_edit.target == "a photo of a man sitting with a cat"
    assert outcome.prompt_edit.blend_source_words == ("dog",)
    mask = outcome.result.pixel_mask
    assert mask is not None
    changed = np.any(np.asarray(outcome.image) != np.asarray(inversion.image), axis=-1)
    assert not changed[mask == 0].any()  # outside the dog's region the photo is untouched
    removal = editor.run(inversion, EditRequest("remove", subject="dog"))
    assert removal.prompt_edit.reweight["dog"] == -1.0


def test_a_subject_that_matches_nothing_is_refused_with_advice(tiny_model):
    editor = editor_for(tiny_model)
    photo = test_photo(3, 32)
    request = EditRequest("replace", subject="dog", concept="cat")
    inversion = editor.prepare(photo, editor.source_prompt(photo, request, "a photo of a man"))
    spans = [i for i, t in enumerate(tiny_model.tokens(inversion.prompt)) if t == "dog</w>"]
    found = focus(inversion.maps, spans)
    assert 0.25 <= found <= 1.0
    strict = editor_for(tiny_model, subject_min_focus=found + 1e-3)
    with pytest.raises(NotInPhotoError) as refused:
        strict.run(inversion, request)
    advice = str(refused.value)
    assert advice.startswith("I can't find a dog in this photo")
    assert "| a dog on a sofa" in advice and "caption" not in advice
    lenient = editor_for(tiny_model, subject_min_focus=found - 1e-3)
    assert lenient.run(inversion, request).result.mask is not None


def test_a_free_place_is_where_the_photos_words_do_not_look():
    maps = torch.full((8, 8, 4), 0.01)
    maps[:, :4, 1] = 1.0  # a word for a thing on the left half
    place = free_place(maps, [1])
    assert place[:, 4:].sum() == place.sum() > 0  # the new thing goes right
    left = free_place(maps, [1], Position.LEFT)
    columns = np.nonzero(left.any(0))[0]
    assert columns.mean() < 8 / 3 + 1  # asked for the left: there, even though it is taken
    assert free_place(torch.zeros(8, 8, 4), [], Position.RIGHT)[:, 6:].any()


def test_an_add_on_a_photo_is_confined_to_a_free_place(tiny_model):
    editor = editor_for(tiny_model)
    photo = test_photo(4, 32)
    inversion = editor.prepare(photo, "a photo of a man sitting")
    outcome = editor.run(inversion, EditRequest("add", concept="hat", position="left"))
    region = outcome.prompt_edit.region
    assert outcome.prompt_edit.target == "a photo of a man sitting and a hat on the left"
    assert region is not None and region[:, : region.shape[1] // 2].sum() == region.sum()
    latent_mask = outcome.result.mask
    side = latent_mask.shape[0]
    assert not latent_mask[:, side // 2 + 1:].any()  # nothing changed on the right


@pytest.mark.parametrize("action, fields", [("remove", {"subject": "man"}),
                                            ("add", {"concept": "hat"})])
def test_a_large_photo_comes_back_at_its_size_untouched_outside_the_mask(tiny_model, action,
                                                                         fields):
    editor = editor_for(tiny_model)
    photo = test_photo(5, (1280, 960), blobs=3)
    inversion = editor.prepare(photo, "a photo of a man sitting")
    outcome = editor.run(inversion, EditRequest(action, **fields), photo=photo)
    assert outcome.image.size == (1280, 960) and outcome.mask.shape == (960, 1280)
    outside = outcome.mask == 0
    assert outside[:, :160].all() and outside[:, -160:].all()  # beside the square it saw
    assert 0 < (~outside).sum() < outside.size  # the mask covers some of it, not all
    same = np.asarray(outcome.image)[outside] == np.asarray(photo)[outside]
    assert same.all()


@pytest.mark.parametrize("size, box", [((1280, 960), (0, 0, 512, 512)),
                                       ((960, 1280), (0, 0, 512, 512)),
                                       ((1920, 1080), (0, 40, 512, 472))])
def test_the_whole_frame_goes_into_the_square_and_comes_back(size, box):
    photo = test_photo(9, size, blobs=3)
    square = np.asarray(fit_whole(photo, 512))
    assert square.shape == (512, 512, 3) and whole_frame_box(size, 512) == box
    top, bottom = box[1], box[3]
    if top:  # the padding mirrors the frame's edges
        assert (square[:top] == square[2 * top - 1:top - 1:-1]).all()
        assert (square[bottom:] == square[bottom - 1:2 * bottom - 513:-1]).all()
    back = np.asarray(unfit_whole(Image.fromarray(square), size), np.float32)
    error = np.abs(back - np.asarray(photo, np.float32)).mean(axis=2)
    assert back.shape[:2] == (size[1], size[0])
    assert np.median(error) < 1 and error.mean() < 2  # all of it back, soft at the edges only
    strip = min(size) // 8  # the photo's own strips beside the centre square come back there
    assert error[:, :strip].mean() < 2 and error[:, -strip:].mean() < 2
    square_photo = test_photo(9, 96)
    assert fit_whole(square_photo, 32).tobytes() == fit_square(square_photo, 32).tobytes()


def test_a_restyle_of_a_large_photo_comes_back_whole_at_its_size(tiny_model, tmp_path):
    editor = editor_for(tiny_model)
    photo = test_photo(6, (1280, 960), blobs=3)
    restyle = EditRequest("restyle", concept="painting")
    assert editor.framing(photo, restyle) is Framing.WHOLE
    assert editor.framing(photo, EditRequest("add", concept="hat")) is Framing.CENTRE
    assert editor.framing(test_photo(6, 96), restyle) is Framing.CENTRE  # one inversion serves
    centre = editor.prepare(photo, "a photo of a man sitting")
    with pytest.raises(InversionError, match="framing 'whole'"):
        editor.run(centre, restyle, photo=photo)
    inversion = editor.prepare(photo, "a photo of a man sitting", framing=Framing.WHOLE)
    assert inversion.image.tobytes() == fit_whole(photo, tiny_model.image_size).tobytes()
    inversion.save(tmp_path / "whole.safetensors")
    reloaded = Inversion.load(tmp_path / "whole.safetensors", tiny_model)
    assert reloaded.framing is Framing.WHOLE
    outcome = editor.run(reloaded, restyle, photo=photo)
    assert outcome.image.size == (1280, 960) and outcome.mask is None
    result, original = np.asarray(outcome.image, np.float32), np.asarray(photo, np.float32)
    for strip in (slice(0, 160), slice(-160, None)):  # beside the centre square: restyled too
        assert np.abs(result[:, strip] - original[:, strip]).mean() > 10
    # the whole restyled square, stretched back onto the frame: not its centre, not the photo
    assert outcome.image.tobytes() == unfit_whole(outcome.result.image, photo.size).tobytes()
