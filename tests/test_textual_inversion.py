"""Textual inversion on the tiny random models: what is trained, what is left alone, controls."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from PIL import Image, ImageDraw

from engine.captioning import Subject
from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept
from engine.config import ConceptSettings
from engine.errors import (
    ImageError,
    InconsistentImagesError,
    NotEnoughImagesError,
    TooManyImagesError,
)
from engine.textual_inversion import (
    OBJECT_TEMPLATES,
    augmented_views,
    check_images,
    denoise,
    encode_views,
    encode_with_vectors,
    image_consistency,
    initial_vectors,
    learn_concept,
    learn_concept_from_files,
    template_ids,
)
from oneword.limits import LEARN_PHOTOS

FAST = ConceptSettings(steps=12, learning_rate=0.05, batch_size=2, vectors=2, augment=2,
                       early_stop_window=0)



def red_circle(shift: int = 0) -> Image.Image:
    image = Image.new("RGB", (32, 32), (240, 240, 240))
    ImageDraw.Draw(image).ellipse((6 + shift, 6, 24 + shift, 24), fill=(220, 40, 40))
    return image


def unrelated_images() -> list[Image.Image]:
    stripes = Image.new("RGB", (32, 32), (20, 20, 20))
    for x in range(0, 32, 8):
        ImageDraw.Draw(stripes).rectangle((x, 0, x + 3, 31), fill=(250, 220, 30))
    noise = Image.frombytes("RGB", (32, 32), random.Random(0).randbytes(32 * 32 * 3))
    return [red_circle(), Image.new("RGB", (32, 32), (30, 60, 200)), noise, stripes]


@pytest.fixture(scope="module")
def circles() -> list[Image.Image]:
    return [red_circle(shift) for shift in (-2, -1, 1, 2)]


def cached_latents(model, images: list[Image.Image], augment: int, seed: int) -> torch.Tensor:
    """Latents of the views learning draws from (the augmented photos), encoded once."""
    rng = random.Random(seed)
    views = [v for image in images for v in augmented_views(image, augment, model.image_size, rng)]
    return encode_views(model, views)


def plain_loss(model, scheduler: DDIMScheduler, latents: torch.Tensor, hidden: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
    """The denoising error of the frozen UNet for random latents, noise and timesteps, measured
    with the engine's own prediction target (`denoise`)."""
    batch = len(hidden)
    clean = latents[torch.randint(len(latents), (batch,), generator=generator)]
    noise = torch.randn(clean.shape, generator=generator)
    steps = torch.randint(scheduler.config.num_train_timesteps, (batch,), generator=generator)
    prediction, target = denoise(model, scheduler, clean, noise, steps, hidden)
    return F.mse_loss(prediction.float(), target.float())


def held_out_loss(model, latents: torch.Tensor, vectors: torch.Tensor) -> float:
    """The training objective on a fixed batch of 48 draws, the same for every `vectors`."""
    ids, slots = template_ids(model, OBJECT_TEMPLATES, len(vectors))
    pick = torch.arange(48) % len(ids)
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    with torch.no_grad():
        hidden = encode_with_vectors(model, ids[pick], slots[pick], vectors)
        return plain_loss(model, scheduler, latents, hidden,
                          torch.Generator().manual_seed(123)).item()


def test_learning_lowers_the_loss_and_trains_only_the_new_vectors(tiny_model, circles):
    model = tiny_model
    encoder_before = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}
    unet_before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    vocab_before = dict(model.tokenizer.get_vocab())
    reports = []
    settings = replace(FAST, preview_every=6, preview_steps=2)

    result = learn_concept(model, circles, "RedBall", settings=settings, initializer="circle",
                           progress=reports.append)

    concept = result.concept
    assert (concept.name, concept.kind, concept.steps) == ("redball", "object", 12)
    assert concept.vectors.shape == (2, 32) and concept.vectors.dtype == torch.float32
    assert concept.vectors.device.type == "cpu" and concept.base_model == model.source
    assert (result.steps, result.reason, result.stopped_early) == (12, "done", False)
    assert len(result.losses) == 12 and all(map(torch.isfinite, torch.tensor(result.losses)))
    # progress: every step, in order, with previews where asked
    assert [r.step for r in reports] == list(range(1, 13)) and {r.total for r in reports} == {12}
    assert [r.step for r in reports if r.preview is not None] == [6, 12]
    assert reports[5].preview.size == (model.image_size, model.image_size)
    # the shared model is exactly as it was: no tokens, no rows, no weights, no hooks
    assert model.tokenizer.get_vocab() == vocab_before
    for key, value in model.text_encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    for key, value in model.unet.state_dict().items():
        assert torch.equal(value, unet_before[key]), key
    assert not model.text_encoder.get_input_embeddings()._forward_hooks
    # the vectors moved, and downhill: the step reversed goes uphill
    start, _ = initial_vectors(model, 2, "circle", torch.Generator().manual_seed(settings.seed))
    assert not torch.allclose(concept.vectors, start, atol=0.05)
    latents = cached_latents(model, circles, settings.augment, settings.seed)
    learned = held_out_loss(model, latents, concept.vectors)
    initial = held_out_loss(model, latents, start)
    reversed_ = held_out_loss(model, latents, 2 * start - concept.vectors)
    assert learned < initial < reversed_


def test_same_seed_same_concept(tiny_model, circles):
    settings = replace(FAST, steps=5)
    first = learn_concept(tiny_model, circles, "dot", settings=settings)
    again = learn_concept(tiny_model, circles, "dot", settings=settings)
    other = learn_concept(tiny_model, circles, "dot", settings=replace(settings, seed=1))
    assert torch.equal(first.concept.vectors, again.concept.vectors)
    assert first.losses == again.losses
    assert not torch.equal(first.concept.vectors, other.concept.vectors)


def test_training_encodes_prompts_as_inference_does(tiny_model):
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(3))
    ids, slots = template_ids(tiny_model, ["a big {} in the center"], 2)
    with torch.no_grad():
        training = encode_with_vectors(tiny_model, ids, slots, vectors)
    with concepts_in_use(tiny_model, [Concept("thing", "object", vectors)]):
        prompt = expand_prompt(tiny_model, "a big <thing> in the center")
        inference = tiny_model.encode_text([prompt])
    torch.testing.assert_close(training, inference)


def test_a_style_word_gets_its_own_number_of_tokens(tiny_model, circles):
    settings = replace(FAST, steps=2, vectors=3, style_vectors=1)
    thing = learn_concept(tiny_model, circles, "ball", "object", settings).concept
    style = learn_concept(tiny_model, circles, "redish", "style", settings).concept
    assert (thing.num_vectors, style.num_vectors) == (3, 1)
    with concepts_in_use(tiny_model, [thing, style]):
        assert expand_prompt(tiny_model, "<ball> in <redish> style") == (
            "<ball> <ball>_1 <ball>_2 in <redish> style")
    defaults = ConceptSettings()
    assert defaults.vectors_for("object") == defaults.vectors_for("person") == 4
    assert defaults.vectors_for("style") == 8
    # ...but a style's word leaves a short-context model room for a caption: 32 tokens, 6 of them
    long = learn_concept(tiny_model, circles, "wide", "style", replace(settings, style_vectors=8),
                         initializer="red red red red red red red red red").concept
    assert tiny_model.max_tokens == 32 and long.num_vectors == 6


def test_should_stop_cancels_and_early_stop_ends(tiny_model, circles):
    reports = []
    cancelled = learn_concept(tiny_model, circles, "x", settings=FAST, progress=reports.append,
                              should_stop=lambda: len(reports) >= 3)
    assert (cancelled.steps, cancelled.reason, cancelled.stopped_early) == (3, "cancelled", True)
    assert cancelled.concept.steps == 3
    flat = replace(FAST, early_stop_window=2, early_stop_tolerance=1e9)  # nothing is enough
    reports.clear()
    levelled = learn_concept(tiny_model, circles, "x", settings=flat, progress=reports.append)
    assert (levelled.steps, levelled.reason, levelled.stopped_early) == (4, "levelled off", True)
    # the progress tells where it will stop, not the 12 steps planned
    assert [r.stops_by for r in reports] == [4, 4, 4, 4] and reports[-1].total == 12


def test_progress_ends_where_early_stopping_would_end_it_now(tiny_model, circles):
    """While the loss keeps improving the expected end moves on, to the cap at most."""
    reports = []
    improving = replace(FAST, early_stop_window=2, early_stop_tolerance=-1e9)  # all counts
    learned = learn_concept(tiny_model, circles, "x", settings=improving,
                            progress=reports.append)
    assert (learned.steps, learned.reason) == (12, "done")
    assert [r.stops_by for r in reports] == [4, 4, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12]


def test_a_style_word_learns_at_its_own_rate_to_the_last_step(tiny_model, circles):
    flat = replace(FAST, early_stop_window=2, early_stop_tolerance=1e9)  # nothing is enough
    style = learn_concept(tiny_model, circles, "x", "style", settings=flat)
    assert (style.steps, style.reason, style.stopped_early) == (12, "done", False)
    stopping = learn_concept(tiny_model, circles, "x", "style",
                             settings=replace(flat, style_early_stop_window=2))
    assert (stopping.steps, stopping.reason) == (4, "levelled off")
    frozen = [learn_concept(tiny_model, circles, "x", "style",
                            settings=replace(FAST, steps=2, learning_rate=rate,
                                             style_learning_rate=0.0)).concept.vectors
              for rate in (0.0, 0.05)]
    assert torch.equal(frozen[0], frozen[1])  # the things' rate does not move a style
    moving = learn_concept(tiny_model, circles, "x", "style",
                           settings=replace(FAST, steps=2, style_learning_rate=0.05))
    assert not torch.equal(frozen[0], moving.concept.vectors)


def test_image_count_limits(tiny_model, circles):
    with pytest.raises(NotEnoughImagesError, match=f"at least {LEARN_PHOTOS.least}"):
        learn_concept(tiny_model, circles[:LEARN_PHOTOS.least - 1], "x", settings=FAST)
    with pytest.raises(TooManyImagesError, match=f"at most {LEARN_PHOTOS.most}"):
        learn_concept(tiny_model, (circles * 6)[:LEARN_PHOTOS.most + 1], "x", settings=FAST)


def test_learning_from_files(tiny_model, tmp_path, circles):
    paths = []
    for i, image in enumerate(circles[:3]):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    result = learn_concept_from_files(tiny_model, paths, "mug", settings=replace(FAST, steps=2))
    assert result.steps == 2 and result.concept.name == "mug"
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        learn_concept_from_files(tiny_model, [*paths, tmp_path / "broken.jpg"], "mug",
                                 settings=FAST)


def test_inconsistent_photos_warn(tiny_model, circles):
    assert min(image_consistency(circles)) > 0.8
    assert max(image_consistency(unrelated_images())) < 0.2
    assert check_images(circles, FAST) == []
    odd_one = check_images([*circles[:3], unrelated_images()[1]], FAST)
    assert len(odd_one) == 1 and "photo 4 looks unlike" in odd_one[0]
    with pytest.raises(InconsistentImagesError):
        check_images(unrelated_images(), replace(FAST, strict=True))
    result = learn_concept(tiny_model, unrelated_images(), "x", settings=replace(FAST, steps=1))
    assert any("little in common" in w for w in result.warnings)


def test_varied_backgrounds_do_not_count_as_inconsistent():
    samples = Path(__file__).resolve().parent.parent / "engine" / "samples"
    for which in ("creature", "object", "style"):
        photos = [Image.open(p).convert("RGB") for p in sorted((samples / which).glob("*.png"))]
        assert check_images(photos, FAST) == [], which
    scenes = [Image.open(p).convert("RGB") for p in sorted((samples / "scenes").glob("*.png"))]
    creature = [Image.open(p).convert("RGB") for p in sorted((samples / "creature").glob("*.png"))]
    odd = check_images([*creature[:4], scenes[3]], FAST)
    assert len(odd) == 1 and "photo 5 looks unlike" in odd[0]


def test_augmented_views_are_deterministic(circles):
    views = augmented_views(circles[0], 4, 32, random.Random(0))
    assert len(views) == 4 and all(v.size == (32, 32) for v in views)
    assert views[1].tobytes() == views[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT).tobytes()
    again = augmented_views(circles[0], 4, 32, random.Random(0))
    assert [v.tobytes() for v in views] == [v.tobytes() for v in again]
    assert len(augmented_views(circles[0], 0, 32, random.Random(0))) == 1


def test_v_prediction_model(tiny_vpred_model, circles):
    model = tiny_vpred_model
    result = learn_concept(model, circles, "x", settings=replace(FAST, steps=3))
    assert result.concept.vectors.shape == (2, 48) and result.steps == 3
    # the loss's target is the velocity: replay the loss's random draws by hand
    latents = cached_latents(model, circles, 1, 0)
    hidden = model.encode_text(["a photo", "a cat"])
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    with torch.no_grad():
        loss = plain_loss(model, scheduler, latents, hidden, torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)
    clean = latents[torch.randint(len(latents), (2,), generator=draws)]
    noise = torch.randn(clean.shape, generator=draws)
    steps = torch.randint(1000, (2,), generator=draws)
    with torch.no_grad():
        prediction = model.unet(scheduler.add_noise(clean, noise, steps), steps,
                                encoder_hidden_states=hidden).sample
    velocity = scheduler.get_velocity(clean, noise, steps)
    torch.testing.assert_close(loss, F.mse_loss(prediction, velocity))
    assert not torch.allclose(loss, F.mse_loss(prediction, noise))


def test_described_vectors_start_one_per_word(tiny_model):
    table = tiny_model.text_encoder.get_input_embeddings().weight.detach()
    words = "red circle on grass"
    ids = tiny_model.tokenizer(words, add_special_tokens=False).input_ids
    assert len(ids) == 4
    start, note = initial_vectors(tiny_model, 2, words, torch.Generator().manual_seed(0), 8)
    assert note is None and start.shape == (4, tiny_model.text_width)  # more words than 2
    assert torch.allclose(start, table[ids], atol=0.02)
    few, _ = initial_vectors(tiny_model, 4, "red circle", torch.Generator().manual_seed(0), 8)
    pair = tiny_model.tokenizer("red circle", add_special_tokens=False).input_ids
    assert torch.allclose(few, table[pair + pair], atol=0.02)  # repeated up to the kind's count
    capped, _ = initial_vectors(tiny_model, 1, words, torch.Generator().manual_seed(0), 2)
    halves = torch.stack([table[ids[:2]].mean(0), table[ids[2:]].mean(0)])
    assert torch.allclose(capped, halves, atol=0.02)  # neighbours averaged down to the cap
    mean, note = initial_vectors(tiny_model, 3, None, torch.Generator().manual_seed(0), 8)
    assert note is None and torch.allclose(mean, table.mean(0).expand(3, -1), atol=0.02)


class Describing:
    """A captioner that words each photo's subject as "red circle" (one photo: "red ring")."""

    def caption(self, image: Image.Image) -> str:
        return "a red circle"

    def subject(self, image: Image.Image, kind: str) -> Subject:
        odd = image.getpixel((2, 2)) == (0, 0, 0)
        return Subject("a big {} in the center", None, "red ring" if odd else "red circle")


def test_learning_starts_from_the_captioners_words_unless_told_otherwise(tiny_model, circles):
    odd = red_circle()
    odd.putpixel((2, 2), (0, 0, 0))
    settings = replace(FAST, steps=1, vectors=1)
    described = learn_concept(tiny_model, [*circles, odd], "ball", settings=settings,
                              captioner=Describing())
    assert described.start_words == "red circle"  # the most common words among the views
    assert len(tiny_model.tokenizer("red circle", add_special_tokens=False).input_ids) == 2
    assert described.concept.vectors.shape[0] == 2  # one per word, though the kind's count is 1
    told = learn_concept(tiny_model, circles, "ball", settings=settings, captioner=Describing(),
                         initializer="apple")
    assert told.start_words == "apple"
    plain = learn_concept(tiny_model, circles, "ball", settings=settings)
    assert plain.start_words is None and plain.concept.vectors.shape[0] == settings.vectors


class InContexts(Describing):
    """A captioner that also puts each photo's subject in two contexts."""

    def subject(self, image: Image.Image, kind: str) -> Subject:
        return Subject("a big {} in the center", None, "red circle",
                       ("a {} in the center", "a tree on the left and a {} in the center"))


def test_each_view_is_learned_under_its_caption_and_its_contexts(tiny_model, circles):
    from engine.textual_inversion import CaptionChoices, Draws, training_set

    data = training_set(tiny_model, circles, "object", replace(FAST, augment=2), InContexts())
    assert len(data.captions) == len(data.contexts) == 2 * len(circles)
    assert set(data.captions) == {("a big {} in the center",)}
    assert set(data.contexts) == {("a {} in the center",
                                   "a tree on the left and a {} in the center")}
    texts = ["a big {} in the center", "a {} in the center",
             "a tree on the left and a {} in the center"]
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    for share, low, high in ((0.0, 0, 0), (0.5, 0.4, 0.6), (1.0, 1, 1)):
        draws = Draws.random(data, CaptionChoices.of(data, texts, share), scheduler, 400,
                             torch.Generator().manual_seed(0))
        in_context = (draws.captions > 0).float().mean().item()
        assert low <= in_context <= high
        assert share != 0.5 or set(draws.captions.tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="one"):
        Subject("a big {} in the center", contexts=("a tree on the left",))


def test_offset_draws_shift_each_channel_of_each_sample():
    from engine.textual_inversion import CaptionChoices, Draws, TrainingSet

    data = TrainingSet(torch.zeros(2, 4, 8, 8), [("{}",), ("{}",)], None,
                       torch.tensor([False, False]), "whole picture")
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    choices = CaptionChoices.of(data, ["{}"], 0.0)
    means = {offset: Draws.random(data, choices, scheduler, 256, torch.Generator()
                                  .manual_seed(0), offset=offset).noise.mean((2, 3)).std().item()
             for offset in (0.0, 0.5)}
    assert means[0.0] < 0.2 and 0.4 < means[0.5] < 0.65  # 1/8 from 64 pixels; with 0.5 on top
