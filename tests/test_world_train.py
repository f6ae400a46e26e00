"""The sticker-world trainer: its recipe on resume (a checkpoint's own, unless told) and its
pools rendered on several processes."""

from __future__ import annotations

import json
import math
import os
import random
import resource
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from world.render import ear_mask, render
from world.scene import (
    COLOURS,
    EAR_WORDS,
    FACE_ONLY,
    MAX_FINE_FEATURES,
    PATTERN_WORDS,
    POSITIONS,
    Scene,
    WorldObject,
    grounded_caption,
    nameable_features,
    person_vocabulary,
    random_scene,
    reserved_creature,
    reserved_object,
)
from world.train import (
    TrainConfig,
    Trainer,
    ear_cells,
    ear_part,
    feature_named,
    object_weighted_error,
    offset_noise,
    on_workers,
    rendered_parts,
    run_config,
    unet_learning_rate,
)


def saved_run(run_dir: Path, **fields: object) -> Path:
    """A run folder whose checkpoint was saved with ``fields`` changed from the defaults."""
    run_dir.mkdir()
    recipe = asdict(TrainConfig(run_dir=str(run_dir), export_dir="elsewhere", **fields))
    torch.save({"config": recipe}, run_dir / "state.pt")
    return run_dir


def test_a_fresh_run_takes_the_defaults(tmp_path):
    cfg = run_config(str(tmp_path / "new"))
    assert (cfg.single_pool, cfg.export_dir) == (TrainConfig.single_pool, TrainConfig.export_dir)


def test_a_resumed_run_keeps_its_own_recipe_without_flags(tmp_path):
    run = saved_run(tmp_path / "run", single_pool=6000, multi_pool=18000, bf16=False)
    cfg = run_config(str(run))
    assert (cfg.single_pool, cfg.multi_pool, cfg.bf16, cfg.export_dir) == (
        6000, 18000, False, "elsewhere")


def test_flags_override_the_saved_recipe(tmp_path):
    run = saved_run(tmp_path / "run", export_every=500)
    cfg = run_config(str(run), "out", overrides={"export_every": "250", "bf16": "false"})
    assert (cfg.export_every, cfg.bf16, cfg.export_dir) == (250, False, "out")


def test_an_unknown_field_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="no field 'pool'"):
        run_config(str(tmp_path / "new"), overrides={"pool": "3"})


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_pools_render_the_same_on_several_processes():
    """Parallel rendering (a GPU run's pools) gives what one process gives, in order."""
    rng = random.Random(3)
    parts = [[random_scene(rng) for _ in range(3)] for _ in range(3)]
    alone = list(rendered_parts(parts, (16, 8), workers=1))
    together = list(rendered_parts(parts, (16, 8), workers=2))
    assert len(together) == len(parts)
    for (images, grids), (images2, grids2) in zip(alone, together, strict=True):
        assert [im.tobytes() for im in images] == [im.tobytes() for im in images2]
        assert all(np.array_equal(grids[side], grids2[side]) for side in (16, 8))
        assert grids[16].shape == (3, len(POSITIONS), 256)
    assert any(grids[16].any() for _, grids in alone)  # masks were drawn


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_ears_are_drawn_the_same_on_several_processes():
    """A pool's ear grids drawn in parts on two processes are `ear_cells` of the whole pool."""
    scenes = [creature_scene("round"), creature_scene("pointy"), creature_scene("none")]
    rng = random.Random(5)
    scenes += [random_scene(rng) for _ in range(3)]
    parts = [scenes[:2], scenes[2:4], scenes[4:]]
    together = np.concatenate(list(on_workers(ear_part, parts, 2, 16)))
    assert np.array_equal(together, ear_cells(scenes, 16).numpy())
    assert together[:2].any()  # the eared creatures' ears were drawn


@pytest.mark.slow  # starts processes or runs a whole pipeline
def test_a_pool_renders_on_several_processes_within_few_file_descriptors():
    """Mask grids come back from the rendering processes without holding a file descriptor
    each (a pool of 18,000 scenes at two grid sides once ran out of them)."""
    rng = random.Random(4)
    parts = [[random_scene(rng) for _ in range(40)] for _ in range(3)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 100, hard))
    try:
        rendered = list(rendered_parts(parts, (16, 8, 4), workers=2))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert sum(len(grids[16]) for _, grids in rendered) == 120


def test_object_weighting_moves_the_loss_onto_objects_and_keeps_its_scale():
    """An error inside an object counts `weight` times one outside; a uniform error is
    unchanged, so turning the weighting on does not rescale the loss."""
    cells = torch.zeros(2, 3, 16)  # two scenes, three positions, a 4x4 latent
    cells[:, 1, :4] = 1  # the object at the second position covers the first row
    cells = cells.bool()
    inside, outside = torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 4)
    inside[:, :, 0, :] = 1.0
    outside[:, :, 3, :] = 1.0
    uniform = torch.full((2, 4, 4, 4), 0.5)
    assert torch.allclose(object_weighted_error(uniform, cells, 5.0), uniform.mean(dim=(1, 2, 3)))
    assert torch.allclose(object_weighted_error(inside, cells, 1.0), inside.mean(dim=(1, 2, 3)))
    weighted_in = object_weighted_error(inside, cells, 5.0)
    weighted_out = object_weighted_error(outside, cells, 5.0)
    assert torch.allclose(weighted_in, 5 * weighted_out)
    assert (weighted_in > inside.mean(dim=(1, 2, 3))).all()


def creature_scene(ears: str) -> Scene:
    """The reserved creature, big on the left, with `ears`, beside a circle."""
    creature = reserved_creature("big", "left")
    creature = replace(creature, features=replace(creature.features, ears=ears))
    circle = WorldObject("circle", "red", "small", "right", (220, 40, 40))
    return Scene((creature, circle), "sky")


def test_the_ear_mask_covers_either_ear_shape_off_the_body_whatever_the_creature_wears():
    pointy, none = render(creature_scene("pointy")), render(creature_scene("none"))
    drawn_ears = np.clip(pointy.masks["left"] - none.masks["left"], 0, 1) > 0.5
    mask = ear_mask(creature_scene("pointy"))
    assert drawn_ears.any() and (mask[drawn_ears] > 0.5).all()  # its own ears
    assert np.array_equal(mask, ear_mask(creature_scene("none")))  # ears it could have
    assert not (mask[none.masks["left"] > 0.99] > 0).any()  # never the body
    assert not mask[:, 40:].any()  # nor the circle
    assert 0 < (mask > 0.5).sum() < 0.05 * mask.size  # a few pixels of the scene
    no_creature = Scene((WorldObject("circle", "red", "big", "left", (220, 40, 40)),), "sky")
    assert not ear_mask(no_creature).any()


def test_ear_cells_mark_the_latent_pixels_an_ear_touches():
    grid = ear_cells([creature_scene("round")], 16)[0]
    assert grid.shape == (16, 16) and 0 < grid.sum() < 16
    touched = np.argwhere(ear_mask(creature_scene("round")) > 0.15) // 4
    assert {tuple(cell) for cell in touched} == {tuple(c) for c in np.argwhere(grid.numpy())}


def test_ear_weighting_counts_ear_pixels_at_least_its_weight():
    """Ear pixels count `ear_weight` times, object pixels keep theirs, weight 1 changes
    nothing."""
    cells = torch.zeros(1, 3, 16, dtype=torch.bool)
    cells[:, 1, :8] = True  # an object over the first two rows
    ears = torch.zeros(1, 4, 4, dtype=torch.bool)
    ears[:, 3, 0] = True  # an ear pixel outside it
    on_ear, on_object = torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4)
    on_ear[:, :, 3, 0] = 1.0
    on_object[:, :, 0, 0] = 1.0
    assert torch.allclose(object_weighted_error(on_ear, cells, 5.0, ears, 1.0),
                          object_weighted_error(on_ear, cells, 5.0))
    weighted_ear = object_weighted_error(on_ear, cells, 5.0, ears, 20.0)
    assert torch.allclose(weighted_ear, 4 * object_weighted_error(on_object, cells, 5.0, ears,
                                                                   20.0))


def tiny_recipe(run_dir: Path, **fields: object) -> TrainConfig:
    """The bundled architecture on pools of two scenes, its VAE stage skipped."""
    recipe: dict[str, object] = dict(single_pool=2, multi_pool=2, batch=2)
    recipe.update(fields)
    return TrainConfig(run_dir=str(run_dir), export_dir=str(run_dir / "export"), vae_steps=0,
                       render_workers=1, bf16=False, **recipe)


def test_a_unet_step_weights_objects_with_masks_cached_at_the_latent_side(tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run", object_loss_weight=5.0), torch.device("cpu"))
    trainer.ensure_pools()
    assert trainer.pool_cells["single"][trainer.latent_side].any()
    before = [p.detach().clone() for p in trainer.unet.parameters()]
    losses = trainer.train_unet_step()
    assert math.isfinite(losses["loss"]) and math.isfinite(losses["grounding"])
    assert 0 < losses["batch_s"] < losses["step_s"]  # the log's split of a step's time
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.unet.parameters(),
                                                     strict=True))


def test_a_unet_step_weights_ears_with_grids_drawn_once_per_pool(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(tiny_recipe(run, ear_loss_weight=20.0), torch.device("cpu"))
    trainer.ensure_pools()
    scenes = trainer.pools["multi"][0]
    assert torch.equal(trainer.pool_ears["multi"], ear_cells(scenes, trainer.latent_side))
    assert (run / "ears-multi.pt").exists() and trainer.unet_batch().ears.shape == (2, 16, 16)
    assert math.isfinite(trainer.train_unet_step()["loss"])
    plain = Trainer(tiny_recipe(tmp_path / "plain"), torch.device("cpu"))
    plain.ensure_pools()
    assert plain.unet_batch().ears is None and not (tmp_path / "plain" / "ears-multi.pt").exists()


def test_ears_are_weighted_when_objects_are_not(tmp_path):
    """The ear weight does not hang on the object weight: with objects at 1x, the same first
    batch and noise give another loss once its creature's ears count 20x."""
    losses = []
    for ear_weight in (1.0, 20.0):
        trainer = Trainer(tiny_recipe(tmp_path / str(ear_weight), object_loss_weight=1.0,
                                      ear_loss_weight=ear_weight), torch.device("cpu"))
        trainer.ensure_pools()
        torch.manual_seed(0)
        losses.append(trainer.train_unet_step()["loss"])
    assert trainer.pool_ears["single"].any()  # the first steps draw from the one-object pool
    assert losses[0] != pytest.approx(losses[1])


def test_named_ears_always_name_the_ears_and_never_the_whole_creature():
    rng = random.Random(0)
    creature = reserved_creature("big", "left")
    scene = Scene((creature,), "sky")
    for _ in range(50):
        chosen = feature_named(scene, "ears", rng)["left"]
        assert "ears" in chosen and len(chosen) <= MAX_FINE_FEATURES
        assert set(chosen) <= set(nameable_features(creature))


def test_a_named_ears_batch_holds_lone_eared_creatures_whose_captions_name_their_ears(tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run", named_ears_share=1.0, single_pool=60,
                                  caption_dropout=0.0), torch.device("cpu"))
    trainer.ensure_pools()
    scenes, latents = trainer.pools["single"]
    eared = trainer.lone_with("ears")
    assert 0 < len(eared) < len(scenes)  # the pool holds other things too
    eared_latents = latents[eared].float() * trainer.scaling_factor
    for _ in range(3):
        batch = trainer.unet_batch()
        for row, text in zip(batch.latents, batch.texts, strict=True):
            drawn = [i for i, known in zip(eared, eared_latents, strict=True)
                     if torch.equal(known, row)]
            assert drawn, "a batch drew a scene without an eared creature"
            ears = scenes[drawn[0]].objects[0].features.ears
            assert EAR_WORDS[ears] in text.split() and "creature" in text.split(), text
    assert math.isfinite(trainer.train_unet_step()["loss"])


def test_named_patterns_name_the_pattern_and_its_colour_but_never_the_reserved_object_whole():
    rng = random.Random(0)
    striped = WorldObject("square", "red", "big", "left", COLOURS["red"], pattern="stripes",
                          pattern_rgb=COLOURS["green"])
    reserved = reserved_object("big", "left")
    for thing in (striped, reserved):
        fine = feature_named(Scene((thing,), "sky"), "pattern", rng)
        assert fine == {"left": ("pattern",)}
    striped_text, _ = grounded_caption(Scene((striped,), "sky"), None, fine={"left": ("pattern",)})
    reserved_text, _ = grounded_caption(Scene((reserved,), "sky"), None,
                                        fine={"left": ("pattern",)})
    assert "with green stripes" in striped_text
    assert "with stripes" in reserved_text and "blue" not in reserved_text.split()


def test_named_batches_split_by_their_shares_and_hold_lone_things_with_the_feature_named(
        tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run", named_ears_share=0.5,
                                  named_patterns_share=0.5, single_pool=120,
                                  caption_dropout=0.0), torch.device("cpu"))
    trainer.ensure_pools()
    scenes, latents = trainer.pools["single"]
    patterned = trainer.lone_with("pattern")
    assert 0 < len(patterned) < len(scenes)
    assert all(scenes[i].objects[0].pattern for i in patterned)
    drawn = [trainer.named_feature() for _ in range(400)]
    assert 150 < drawn.count("ears") < 250 and drawn.count("ears") + drawn.count("pattern") == 400
    known = latents[patterned].float() * trainer.scaling_factor
    pattern_words = set(PATTERN_WORDS.values())
    batches = [trainer.unet_batch() for _ in range(6)]
    pattern_batches = [b for b in batches if "creature" not in " ".join(b.texts).split()]
    assert pattern_batches, "six batches at a half share drew no pattern batch"
    for batch in pattern_batches:
        for text, row in zip(batch.texts, batch.latents, strict=True):
            assert any(torch.equal(k, row) for k in known), "drew an unpatterned scene"
            assert pattern_words & set(text.split()), text


def test_named_shares_beyond_one_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="named_ears_share"):
        Trainer(tiny_recipe(tmp_path / "run", named_ears_share=0.7, named_patterns_share=0.7),
                torch.device("cpu"))


def test_cached_pools_without_object_masks_are_refused_by_name(tmp_path):
    """Pools cached by a run that kept no masks cannot feed the object weighting."""
    run = tmp_path / "run"
    Trainer(tiny_recipe(run, grounding_weight=0.0, object_loss_weight=1.0),
            torch.device("cpu")).ensure_pools()
    weighted = Trainer(tiny_recipe(run, grounding_weight=0.0, object_loss_weight=5.0),
                       torch.device("cpu"))
    with pytest.raises(ValueError, match="no object masks at side"):
        weighted.ensure_pools()


def test_offset_noise_moves_each_channels_mean_and_plain_noise_does_not():
    torch.manual_seed(0)
    latents = torch.zeros(256, 4, 16, 16)
    plain = offset_noise(latents, 0.0).mean(dim=(2, 3))
    offset = offset_noise(latents, 0.5).mean(dim=(2, 3))
    assert plain.std() < 0.1  # a 16x16 mean of unit noise: std 1/16
    assert 0.4 < offset.std() < 0.6


def test_pyramid_noise_keeps_unit_variance_and_adds_coarse_patches():
    torch.manual_seed(0)
    latents = torch.zeros(256, 4, 16, 16)
    plain, pyramid = offset_noise(latents, 0.0), offset_noise(latents, 0.0, pyramid=0.6)
    assert pyramid.std(dim=(1, 2, 3)).allclose(torch.ones(256))
    coarse = [F.avg_pool2d(n, 4).std().item() for n in (plain, pyramid)]
    assert coarse[0] < 0.3 < coarse[1]  # 4x4 means of unit noise: std 1/4


def test_the_learning_rate_warms_up_holds_and_decays_over_the_last_fifth():
    cfg = TrainConfig(lr=1e-3, warmup=500, unet_steps=60000)
    assert unet_learning_rate(cfg, 0) == pytest.approx(1e-3 / 500)
    assert unet_learning_rate(cfg, 499) == pytest.approx(1e-3)
    assert unet_learning_rate(cfg, 30000) == pytest.approx(1e-3)
    assert unet_learning_rate(cfg, 54000) == pytest.approx(0.5e-3)
    assert unet_learning_rate(cfg, 59999) == pytest.approx(0.05e-3)
    assert unet_learning_rate(cfg, 39553, warmed_from=39553) == pytest.approx(1e-3 / 500)
    assert unet_learning_rate(cfg, 40052, warmed_from=39553) == pytest.approx(1e-3)
    assert unet_learning_rate(TrainConfig(warmup=0), 0) == pytest.approx(TrainConfig.lr)


def test_a_warm_start_warms_up_again_and_a_resume_remembers_from_where(tmp_path):
    """A warm start's optimiser state is fresh, so its rate climbs again from the step it
    continued from; a checkpoint of that run keeps climbing from the same step."""
    first = Trainer(tiny_recipe(tmp_path / "first"), torch.device("cpu"))
    first.unet_step = 30000
    first.export(tmp_path / "first" / "export")
    cfg = tiny_recipe(tmp_path / "second", warm_start_dir=str(tmp_path / "first" / "export"))
    second = Trainer(cfg, torch.device("cpu"))
    assert (second.unet_step, second.warmed_from) == (30000, 30000)
    second.ensure_pools()
    second.train_unet_step()
    assert second.opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / cfg.warmup)
    second.save()
    resumed = Trainer(tiny_recipe(tmp_path / "second"), torch.device("cpu"))
    assert (resumed.unet_step, resumed.warmed_from) == (30001, 30000)
    resumed.ensure_pools()
    resumed.train_unet_step()
    assert resumed.opt.param_groups[0]["lr"] == pytest.approx(2 * cfg.lr / cfg.warmup)


def test_a_run_keeps_its_periodic_exports_and_they_average_into_a_model(tmp_path):
    from engine.model import load_model
    from world.average import average_exports

    run = tmp_path / "run"
    Trainer(tiny_recipe(run, unet_steps=2, export_every=1, warmup=1),
            torch.device("cpu")).run(minutes=5)
    kept = [run / "export-1", run / "export-2"]
    steps = [json.loads((folder / "training.json").read_text())["unet_steps"] for folder in kept]
    assert steps == [1, 2]
    record = average_exports(kept, tmp_path / "averaged")
    assert record["averaged_from"] == [1, 2]
    assert load_model(tmp_path / "averaged", device="cpu").image_size == 64


def test_a_profile_trains_its_steps_and_writes_where_their_time_went(tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run"), torch.device("cpu"))
    path = trainer.profile(steps=2)
    assert trainer.unet_step == 3  # the untimed first step and the two profiled
    text = path.read_text()
    assert text.startswith("2 UNet steps of 2 on cpu")
    assert "aten::convolution" in text and "Self CPU" in text


def test_the_moving_average_follows_the_weights_by_its_decay(tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run", ema_decay=0.5), torch.device("cpu"))
    trainer.ensure_pools()
    start = [p.detach().clone() for p in trainer.unet.parameters()]
    trainer.train_unet_step()
    # diffusers' EMA warms its decay up as (1 + n) / (10 + n): 2/11 on the first update
    decay = min(0.5, 2 / 11)
    for shadow, old, new in zip(trainer.ema_unet.shadow_params, start,
                                trainer.unet.parameters(), strict=True):
        torch.testing.assert_close(shadow, decay * old + (1 - decay) * new.detach())


def test_people_pools_hold_lone_faces_and_group_photos_and_their_batches_name_a_face_part(
        tmp_path):
    trainer = Trainer(tiny_recipe(tmp_path / "run", people_share=0.5, named_faces_share=1.0,
                                  single_pool=60, multi_pool=40, caption_dropout=0.0),
                      torch.device("cpu"))
    singles = trainer.pool_scenes("single")
    groups = [s for s in trainer.pool_scenes("multi")
              if sum(o.kind == "face" for o in s.objects) >= 2]
    assert sum(s.objects[0].kind == "face" for s in singles) >= 20 and len(groups) >= 12
    assert {trainer.named_feature() for _ in range(200)} == set(FACE_ONLY)
    trainer.ensure_pools()
    words = set(person_vocabulary())
    batch = trainer.unet_batch()
    for text in batch.texts:
        assert text.split().count("face") == 1 and words & set(text.split()), text


def test_a_warm_start_with_new_words_learns_only_their_rows_once_the_encoder_is_frozen(
        tmp_path):
    """Words added to the vocabulary after the text encoder froze (a face's identity) get
    embedding rows of their own that train; every other weight of the encoder stays."""
    first = Trainer(tiny_recipe(tmp_path / "first"), torch.device("cpu"))
    first.unet_step = 50000  # past freeze_text_encoder_at
    first.export(tmp_path / "first" / "export")
    encoder_dir = tmp_path / "first" / "export" / "text_encoder"
    from transformers import CLIPTextModel

    encoder = CLIPTextModel.from_pretrained(encoder_dir)
    known = len(encoder.get_input_embeddings().weight) - len(person_vocabulary()) - 5
    encoder.resize_token_embeddings(known)  # as exported before the newest words existed
    encoder.save_pretrained(encoder_dir)
    cfg = tiny_recipe(tmp_path / "second", warm_start_dir=str(tmp_path / "first" / "export"),
                      lr=1e-2, warmup=1)
    second = Trainer(cfg, torch.device("cpu"))
    assert second.new_words_from == known
    before = {k: v.clone() for k, v in second.text_encoder.state_dict().items()}
    second.ensure_pools()
    for _ in range(3):
        second.train_unet_step()
    after = second.text_encoder.state_dict()
    key = next(k for k in after if k.endswith("token_embedding.weight"))
    assert torch.equal(after[key][:known], before[key][:known])
    assert not torch.equal(after[key][known:], before[key][known:])
    assert all(torch.equal(after[k], before[k]) for k in after if k != key)
    second.save()
    resumed = Trainer(tiny_recipe(tmp_path / "second"), torch.device("cpu"))
    assert resumed.new_words_from == known
    trained = [n for n, p in resumed.text_encoder.named_parameters() if p.requires_grad]
    assert len(trained) == 1 and trained[0].endswith("token_embedding.weight")
