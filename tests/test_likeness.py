"""The photo check before learning and the self-check after it: the bundled model's captioner
judging the sample photos, and image embeddings of a tiny random CLIP vision model loaded by
folder name as a real one would be, on the tiny diffusion model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from PIL import Image, ImageOps

from engine.captioning import load_captioner
from engine.config import CheckSettings, ConceptSettings
from engine.errors import MixedPhotosError, ModelLoadError
from engine.likeness import (
    CaptionJudge,
    EmbeddingJudge,
    check_photos,
    common_words,
    load_judge,
)
from engine.model import BUNDLED_MODEL
from engine.self_check import best_word, check_word, learn_checked, refuse_mixed_photos
from tests.helpers import SAMPLES
from tests.odd_photos import another_creature, creature_photos, recoloured_creature
from tests.pictures import test_photo
from tests.tiny_image_model import make_tiny_image_model

FAST = ConceptSettings(steps=6, learning_rate=0.05, batch_size=2, vectors=2, augment=2,
                       early_stop_window=0)


@pytest.fixture(scope="module")
def caption_judge() -> CaptionJudge:
    return CaptionJudge(load_captioner(BUNDLED_MODEL))


@pytest.fixture(scope="module")
def image_model_dir(tmp_path_factory):
    return make_tiny_image_model(tmp_path_factory.mktemp("image-model") / "clip")


def test_common_words_are_what_most_lists_say():
    lists = [("teal", "spotted", "creature"), ("teal", "spotted", "creature"),
             ("amber", "creature"), ("with", "teal", "spotted", "creature")]
    assert common_words(lists) == ("teal", "spotted", "creature")
    assert common_words(lists[1:3]) == ("creature",)
    assert common_words([("with", "a", "with"), ("with", "with")]) == ("with", "with")
    assert common_words([]) == ()


def test_the_captioner_names_the_photo_of_another_creature(caption_judge):
    photos = creature_photos(4)
    assert check_photos(caption_judge, photos, "object").odd == ()
    mixed = photos[:2] + [another_creature()] + photos[2:]
    check = check_photos(caption_judge, mixed, "object")
    assert check.odd == (2,)
    assert {"teal", "spotted"} <= set(check.likeness[2].missing)
    assert all(item.score == 1.0 for i, item in enumerate(check.likeness) if i != 2)


def test_the_same_creature_in_another_colour_is_caught(caption_judge):
    check = check_photos(caption_judge, creature_photos(4) + [recoloured_creature()], "object")
    assert check.odd == (4,)
    assert check.likeness[4].missing == ("teal",)


def test_photos_of_different_things_all_disagree(caption_judge):
    objects = [Image.open(SAMPLES / f"object/object-{i}.png").convert("RGB") for i in (1, 2)]
    check = check_photos(caption_judge, creature_photos(2) + objects + [another_creature()],
                         "object")
    assert check.odd == (0, 1, 2, 3, 4)


def test_the_embedding_judge_loads_by_name_and_finds_the_odd_photo(image_model_dir):
    judge = load_judge(str(image_model_dir), None)
    assert isinstance(judge, EmbeddingJudge)
    photo = test_photo(seed=1, size=64)
    similar = [photo, ImageOps.mirror(photo), photo.rotate(3), photo.resize((60, 60))]
    looks = judge.looks(similar, "object")
    assert all(torch.isclose(look.norm(), torch.tensor(1.0)) for look in looks)
    assert judge.compare(looks, looks[:1])[0].score == pytest.approx(1.0, abs=0.05)
    odd = ImageOps.invert(photo)  # the same shapes in opposite colours
    check = check_photos(judge, similar[:2] + [odd] + similar[2:], "object")
    assert check.odd == (2,)
    assert check.likeness[2].score < judge.odd_bar <= min(
        item.score for i, item in enumerate(check.likeness) if i != 2)


def test_judges_come_from_the_settings_or_the_model_folder(image_model_dir, tmp_path):
    assert load_judge("", None) is None
    assert isinstance(load_judge("", load_captioner(BUNDLED_MODEL)), CaptionJudge)
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        load_judge(str(tmp_path / "no-such-model"), None)


def test_the_self_check_draws_and_judges_a_word(tiny_model, image_model_dir):
    judge = EmbeddingJudge(str(image_model_dir))
    photos = [test_photo(seed=s, size=32) for s in range(3)]
    learned, check = learn_checked(tiny_model, photos, "mochi", "object", FAST, judge,
                                   CheckSettings(tries=3, steps=2))
    assert learned.steps == FAST.steps
    assert check is not None and check.tries == 3 and len(check.drawings) == 3
    assert 0 <= check.alike <= 3
    assert check.alike == sum(item.score >= judge.alike_bar for item in check.likeness)
    assert check.best_drawing in check.drawings and check.missing == ()

    looks = judge.looks(photos, "object")
    again = check_word(tiny_model, judge, looks, learned.concept.vectors, "object",
                       settings=CheckSettings(tries=3, steps=2))
    assert [i.score for i in again.likeness] == pytest.approx([i.score for i in check.likeness])
    assert best_word([check, replace(check, alike=check.alike + 1)]) == 1


def test_a_word_drawn_unlike_the_photos_is_learned_again_from_another_draw(
        tiny_model, image_model_dir):
    judge = EmbeddingJudge(str(image_model_dir))
    photos = [test_photo(seed=s, size=32) for s in range(3)]
    check = CheckSettings(tries=3, steps=2)
    starts: list[int] = []

    def learn(settings: ConceptSettings):
        starts.clear()
        return learn_checked(tiny_model, photos, "mochi", "object", settings, judge, check,
                             progress=lambda p: starts.append(p.step) if p.step == 1 else None)

    draws = [learn(replace(FAST, seed=seed, redraws=0)) for seed in (0, 1000, 2000)]
    assert starts == [1]
    # A bar no word reaches: both redraws are learned, and the one drawn most alike is kept.
    kept, kept_check = learn(replace(FAST, redraws=2, redraw_below=2.0))
    assert starts == [1, 1, 1]
    # judged as the redraws are: each drawn from the same noise as the first word
    looks = judge.looks(photos, "object")
    scores = [check_word(tiny_model, judge, looks, word.concept.vectors, "object",
                         settings=check).score for word, _ in draws]
    best = max(range(3), key=lambda i: (scores[i], -i))
    assert kept_check.score == pytest.approx(scores[best])
    assert torch.equal(kept.concept.vectors, draws[best][0].concept.vectors)
    # A bar every word reaches: learned once.
    learn(replace(FAST, redraws=2, redraw_below=0.0))
    assert starts == [1]


def test_mixed_photos_are_refused_before_learning(tiny_model, image_model_dir):
    judge = EmbeddingJudge(str(image_model_dir))
    photo = test_photo(seed=1, size=64)
    photos = [photo, ImageOps.mirror(photo), ImageOps.invert(photo), photo.rotate(3)]
    stopped: list[bool] = []
    with pytest.raises(MixedPhotosError, match="photo 3 of 4") as caught:
        learn_checked(tiny_model, photos, "mochi", "object", FAST, judge,
                      should_stop=lambda: stopped.append(True) or False)
    assert caught.value.odd == (2,) and caught.value.count == 4
    assert not stopped  # learning never began


def test_no_judge_means_plain_learning_and_no_self_check(tiny_model):
    photos = [test_photo(seed=s, size=32) for s in range(3)]
    learned, check = learn_checked(tiny_model, photos, "mochi", "object", FAST, None)
    assert check is None and learned.steps == FAST.steps


def test_a_style_s_photos_may_show_different_things(tiny_model, caption_judge):
    scenes = [Image.open(SAMPLES / f"scenes/scene-{i}.png").convert("RGB") for i in (1, 2, 3)]
    assert check_photos(caption_judge, scenes, "object").odd == (0, 1, 2)
    refuse_mixed_photos(caption_judge, scenes, "style")  # no error: styles are not compared
