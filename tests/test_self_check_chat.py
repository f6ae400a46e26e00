"""The photo check and the self-check as a user meets them: the real bot and worker processes
over HTTP against our Bot API server (the bundled model's captioner judging, and the tiny
model with a tiny random image model named in the settings), and the bot's words for them."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bot import texts
from engine.model import BUNDLED_MODEL
from oneword import jobs
from tests.helpers import learn, quick_stack, sample
from tests.odd_photos import another_creature
from tests.tiny_image_model import make_tiny_image_model


def test_a_reliable_word_is_told_in_one_sentence():
    said = texts.word_check("mochi", jobs.WordCheck(tries=10, alike=9))
    assert said == "\"mochi\" comes out like your photos in 9 of 10 tries."


def test_a_weak_word_gets_advice_that_fits_what_went_wrong():
    missing = texts.word_check("mochi", jobs.WordCheck(8, 2, ["spotted", "pointyeared"]))
    assert "2 of 8 tries" in missing and "\"spotted\", \"pointyeared\"" in missing
    assert "/forget mochi" in missing and "/learn mochi" in missing
    blank = texts.word_check("mochi", jobs.WordCheck(8, 1, [], blank=6))
    assert "nothing recognisable" in blank
    other = texts.word_check("mochi", jobs.WordCheck(8, 4))
    assert "expect some misses" in other and "different backgrounds" in other
    caption = texts.learned("mochi", 100, [], check=jobs.WordCheck(8, 8))
    assert caption.startswith("I learned \"mochi\"") and "8 of 8 tries" in caption
    assert "tries" not in texts.learned("mochi", 100, [], check=None)


def test_the_odd_photos_are_named_and_a_mix_is_refused():
    one = texts.mixed_photos(jobs.MixedPhotos([5], 5, ["teal", "spotted"]), "mochi")
    assert "Photo 5 of 5 seems" in one and "teal, spotted" in one
    assert "replace it" in one and "leave it out" in one and "/learn mochi" in one
    two = texts.mixed_photos(jobs.MixedPhotos([1, 3], 5))
    assert "Photos 1, 3 of 5 seem" in two and "replace them" in two
    everything = texts.mixed_photos(jobs.MixedPhotos([1, 2, 3], 3))
    assert "don't seem to show one and the same thing" in everything
    error = jobs.MixedPhotos([2], 4, ["teal"]).as_error()
    assert jobs.MixedPhotos.in_error(error) == jobs.MixedPhotos([2], 4, ["teal"])
    assert jobs.MixedPhotos.in_error("something else") is None
    assert jobs.MixedPhotos.in_error(jobs.MIXED_PHOTOS_MARK + "{not json") is None


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def bundled(tmp_path) -> AsyncIterator:
    async with quick_stack(BUNDLED_MODEL, tmp_path / "data") as running:
        yield running


@pytest.mark.slow  # the real bot and worker processes
async def test_a_photo_of_another_creature_is_named_before_learning(bundled):
    service, tg = bundled
    alice = await tg.user("Alice")
    await alice.say("/learn mochi")
    await alice.wait_reply(contains="photos", timeout=60)
    photos = [sample(f"creature/creature-{i}.png") for i in range(1, 5)]
    await alice.send_album(photos + [png(another_creature())])
    refusal = await alice.wait_reply(contains="something else", timeout=300)
    assert "Photo 5 of 5" in refusal.text and refusal.photo is None
    assert "replace it" in refusal.text and "leave it out" in refusal.text

    learned = await learn(tg, alice)  # the four photos of one creature are learned
    assert learned.photo is not None
    assert "comes out like your photos in" in learned.text
    assert all(p.running for p in service.processes.values())


@pytest.mark.slow  # the real bot and worker processes
async def test_the_self_check_by_image_embeddings_comes_with_the_preview(tiny_model_dir,
                                                                         tmp_path):
    image_model = make_tiny_image_model(tmp_path / "clip")
    async with quick_stack(tiny_model_dir, tmp_path / "data",
                           ONEWORD_LIKENESS_MODEL=str(image_model),
                           ONEWORD_SELF_CHECK_TRIES="4") as (service, tg):
        alice = await tg.user("Alice")
        learned = await learn(tg, alice)
        assert learned.photo is not None
        assert "comes out like your photos in" in learned.text and "of 4 tries" in learned.text
