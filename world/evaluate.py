"""Measure the bundled model's figures for its model card, the same way every time.

    python -m world.evaluate                     # all figures, 200 held-out scenes
    python -m world.evaluate --only vae,attention --count 50 --json out.json

Figures (targets in brackets):
- vae: reconstruction PSNR on held-out scenes [>= 30 dB];
- text_to_image: generations of held-out captions judged by the checker: every object's shape,
  colour and position right [>= 90%], background right [>= 90%];
- checker / captioner: agreement with the renderer [>= 98%], exact captions [>= 90%]; also
  its agreement on the same renderings after the model's VAE round trip (no target);
- null_text: null-text inversion reconstruction PSNR of held-out scenes [>= 28 dB];
- concepts: textual inversion of each reserved concept from its sample photos (the person
  from her five portraits, as the person kind), then "a <concept> on the left with sky
  background", judged by the checker [>= 80%; the person, all her identity parts, >= 85%];
- attention: share of an object word's cross-attention inside its ground-truth mask, at the
  resolution LocalBlend uses [>= 60%];
- fine_features: one-object held-out scenes whose captions name one to three fine features
  (a character's hue band, eyes, ears, mouth, marks; a shape's pattern and its colour; the
  same held-out set as before faces had an identity), generated and read by the checker: the
  share of named features drawn right [>= 80%];
- identity_features: faces with each value of each identity feature (hair, hair colour,
  glasses, beard) named alone, generated and read by the checker: per feature, the share
  drawn with the named value [each >= 80%];
- feature_values: creatures with each value of each discrete fine feature (eyes, ears, mouth,
  marks) named alone and beside two other fine features: the share drawn with that value (no
  target; it shows which values the model hedges toward another, and whether naming more
  features at once crowds one out);
- plain_words: what the model draws from words alone, where a learned word starts: patterned
  shapes whose captions name their colour, pattern and pattern colour, the share drawn whole
  (and with the two colours the other way round), and each reserved creature and object asked
  for in its captioner's words for the sample photos (no target);
- fine_through_vae: the same scenes rendered, passed through the VAE and read by the checker:
  the most fine_features can reach through this VAE and this judge, and the same for the
  identity_features' faces (no target);
- styles: held-out captions with each style a caption can name (pixel, outline, pastel and
  sepia) added, generated and read by the checker: the share drawn in that style (no target;
  a learned style and restyle need a model whose words set the look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from engine.attention_control import map_resolution
from engine.config import ConceptSettings, InversionSettings
from engine.inversion import invert, reconstruct
from engine.metrics import psnr
from engine.model import DiffusionModel, load_model
from engine.sampling import generate
from engine.stickers import cross_attention_maps
from world.grounding import mask_at, share_inside
from world.render import render
from world.samples import SAMPLES_DIR
from world.scene import (
    CHARACTER_WORDS,
    COLOURS,
    FACE_ONLY,
    FINE_HUES,
    FINE_STYLES,
    NAMED_STYLES,
    POSITION_PHRASES,
    Scene,
    caption,
    colour_word,
    fine_hue_name,
    grounded_caption,
    is_reserved_object_look,
    nameable_features,
    random_scene,
)

FIGURES = ("vae", "text_to_image", "checker", "null_text", "concepts", "attention",
           "fine_features", "identity_features", "feature_values", "plain_words",
           "fine_through_vae", "styles")


def held_out_scenes(count: int, max_objects: int = 3) -> list[Scene]:
    """Scenes no training run draws: their seeds come from a stream of their own."""
    rng = random.Random("held-out-evaluation")
    return [random_scene(rng, max_objects=max_objects) for _ in range(count)]


def vae_psnr(model: DiffusionModel, scenes: list[Scene]) -> dict:
    values = []
    for scene in scenes:
        image = render(scene, model.image_size).image
        values.append(psnr(image, model.decode(model.encode_image(image))[0]))
    return {"psnr_db": float(np.mean(values)), "target_db": 30.0, "n": len(values)}


def text_to_image(model: DiffusionModel, checker, scenes: list[Scene], batch: int = 25) -> dict:
    from world.checker import matches

    objects_right, background_right = [], []
    for start in range(0, len(scenes), batch):
        chunk = scenes[start:start + batch]
        latents = generate(model, [caption(s) for s in chunk], seed=start)
        for scene, reading in zip(chunk, checker.read(model.decode(latents)), strict=True):
            result = matches(reading, scene)
            objects_right.append(all(result[f"{o.position}.{field}"] for o in scene.objects
                                     for field in ("shape", "colour")))
            background_right.append(result["background"])
    return {"objects_right": float(np.mean(objects_right)), "target_objects": 0.9,
            "background_right": float(np.mean(background_right)), "target_background": 0.9,
            "n": len(scenes)}


def checker_agreement(checker, count: int, model_folder: Path) -> dict:
    """The checker's agreement with the renderer on held-out renderings, and on the same
    renderings after the model's VAE round trip (what generated pictures can look like)."""
    from world.checker import evaluate

    report = evaluate(checker, count)
    fields = {k: v[0] for k, v in report["fields"].items()}
    through = evaluate(checker, count, through_vae=model_folder)
    through_fields = {k: v[0] for k, v in through["fields"].items()}
    return {"mean_field_agreement": float(np.mean(list(fields.values()))), "fields": fields,
            "target_agreement": 0.98, "caption_exact": report["caption_exact"],
            "target_caption": 0.9, "through_vae_fields": through_fields,
            "through_vae_agreement": float(np.mean(list(through_fields.values()))), "n": count}


def null_text_psnr(model: DiffusionModel, scenes: list[Scene]) -> dict:
    values, seconds = [], []
    for scene in scenes:
        image = render(scene, model.image_size).image
        start = time.perf_counter()
        inversion = invert(model, image, caption(scene), "null-text", InversionSettings())
        seconds.append(time.perf_counter() - start)
        values.append(psnr(image, reconstruct(model, inversion)))
    return {"psnr_db": float(np.mean(values)), "target_db": 28.0,
            "seconds_per_image": float(np.mean(seconds)), "n": len(values)}


# The concept figure's prompt for a creature or object, "{}" its word (or its plain words).
CONCEPT_PROMPT = "a {} on the left with sky background"
# Where else a learned creature or object is asked for (place, background), beside the
# figure's own place: the word should not hold only there.
OTHER_PLACES = (("right", "grass"), ("center", "sand"), ("left", "snow"))
# Each reserved concept with the textual-inversion kind it is learned as (the person as a
# user teaches her, `/learn anna person`) and the share of generations it must be shown in.
CONCEPT_KINDS = {"creature": "object", "object": "object", "style": "style",
                 "person": "person"}
CONCEPT_TARGETS = {"creature": 0.8, "object": 0.8, "style": 0.8, "person": 0.85}


def reserved_concepts(model: DiffusionModel, checker, samples: int = 20) -> dict:
    """Each reserved concept learned from its sample photos, and the share of `samples`
    generations showing it whole: the figure, on the left with sky background; for the
    creature, the object and the person also at OTHER_PLACES, a figure of how far the word
    carries. The person is shown when every identity part is hers (`reserved_parts`)."""
    from engine.captioning import load_captioner
    from engine.concept_tokens import concepts_in_use, expand_prompt
    from engine.textual_inversion import learn_concept
    from world.checker import reserved_parts, shows_reserved

    out = {}
    for which, kind in CONCEPT_KINDS.items():
        photos = sample_photos(which)
        start = time.perf_counter()
        learned = learn_concept(model, photos, f"reserved-{which}", kind, ConceptSettings(),
                                captioner=load_captioner(model.source))
        seconds = time.perf_counter() - start
        with concepts_in_use(model, [learned.concept]):
            token = expand_prompt(model, learned.concept.token)
            prompt = (f"a big red circle on the left with sky background in {token} style"
                      if which == "style" else CONCEPT_PROMPT.format(token))
            images = model.decode(generate(model, [prompt] * samples, seed=1))
        readings = checker.read(images)
        where = None if which == "style" else "left"
        hits = [shows_reserved(r, which, where) for r in readings]
        parts = [reserved_parts(r, which, where) for r in readings]
        out[which] = {"shown": float(np.mean(hits)), "target": CONCEPT_TARGETS[which],
                      "steps": learned.steps, "seconds": seconds, "prompt": prompt,
                      "parts": {name: float(np.mean([p[name] for p in parts]))
                                for name in parts[0]}}
        if which != "style":
            out[which]["elsewhere"] = concept_elsewhere(model, checker, learned.concept, which,
                                                        samples)
    return {"concepts": out, "target": 0.8, "samples": samples}


def concept_elsewhere(model: DiffusionModel, checker, concept, which: str,
                      samples: int) -> dict[str, float]:
    """Share of `samples` generations showing a learned creature, object or person whole at
    each of OTHER_PLACES, keyed "place/background"."""
    from engine.concept_tokens import concepts_in_use, expand_prompt
    from world.checker import shows_reserved

    shown = {}
    with concepts_in_use(model, [concept]):
        token = expand_prompt(model, concept.token)
        for place, background in OTHER_PLACES:
            where = POSITION_PHRASES[place]
            prompt = f"a {token} {where} with {background} background"
            readings = checker.read(model.decode(generate(model, [prompt] * samples, seed=1)))
            shown[f"{place}/{background}"] = float(np.mean(
                [shows_reserved(r, which, place) for r in readings]))
    return shown


def attention_in_mask(model: DiffusionModel, scenes: list[Scene]) -> dict:
    """Per object, the share of its kind word's attention (the word LocalBlend follows when
    it is replaced) inside the object's mask, with the maps of `cross_attention_maps`."""
    from engine.prompt_alignment import token_spans

    side = map_resolution(model.unet)
    shares = []
    for scene in scenes:
        rendering = render(scene, model.image_size)
        text, grounding = grounded_caption(scene)
        maps = cross_attention_maps(model, rendering.image, text)
        heat = maps.reshape(-1, maps.shape[-1]).T  # (tokens, cells)
        spans = token_spans(model.tokenizer, text)
        for obj in scene.objects:
            inside = mask_at(rendering.masks[obj.position], side).flatten()
            kind_word = grounding[obj.position][-1]
            for position in spans.spans[kind_word]:
                shares.append(float(share_inside(heat[position], inside)))
    return {"share_inside": float(np.mean(shares)), "target": 0.6, "resolution": side,
            "n_words": len(shares)}


def fine_feature_scenes(count: int) -> list[tuple[Scene, tuple[str, ...]]]:
    """Held-out one-object scenes with fine features, and which of them a caption names.

    A face's identity features are left out (`identity_feature_cases` measures them): the
    random draws, and so the scenes and named features, stay those measured before faces had
    an identity, so the figure compares with earlier cards."""
    rng = random.Random("held-out-fine-features")
    out = []
    while len(out) < count:
        scene = random_scene(rng, max_objects=1, style_probability=0.0)
        options = [o for o in nameable_features(scene.objects[0]) if o not in FACE_ONLY]
        if options:
            chosen = rng.sample(options, rng.randint(1, min(3, len(options))))
            out.append((scene, tuple(sorted(chosen, key=options.index))))
    return out


def named_feature_right(reading, obj, feature: str) -> bool:
    """Whether the checker's reading shows a named fine feature of `obj` as the caption says."""
    from world.checker import hue_distance

    got = reading.object_at(obj.position)
    if got is None or got.kind != obj.kind:
        return False
    if feature == "pattern":
        return (got.pattern, got.pattern_colour) == (
            obj.pattern, next(n for n, v in COLOURS.items() if v == obj.pattern_rgb))
    if got.features is None:
        return False
    if feature == "hue":  # inside the named band, or within the checker's own hue tolerance
        starts = [start for start, _ in FINE_HUES] + [1.0]
        word = fine_hue_name(obj.features.hue)
        index = [name for _, name in FINE_HUES].index(word)
        inside = starts[index] <= got.features.hue % 1.0 < starts[index + 1]
        return inside or hue_distance(got.features.hue, obj.features.hue) < 0.03
    return getattr(got.features, feature) == getattr(obj.features, feature)


def fine_features(model: DiffusionModel, checker, count: int, batch: int = 25) -> dict:
    """Share of fine features named in a caption that the generated picture shows."""
    cases = fine_feature_scenes(count)
    per_feature: dict[str, list[bool]] = {}
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        prompts = [grounded_caption(scene, fine={scene.objects[0].position: chosen})[0]
                   for scene, chosen in chunk]
        images = model.decode(generate(model, prompts, seed=start))
        for (scene, chosen), reading in zip(chunk, checker.read(images), strict=True):
            for feature in chosen:
                per_feature.setdefault(feature, []).append(
                    named_feature_right(reading, scene.objects[0], feature))
    every = [hit for hits in per_feature.values() for hit in hits]
    return {"right": float(np.mean(every)), "target": 0.8, "n_features": len(every),
            "per_feature": {k: float(np.mean(v)) for k, v in per_feature.items()},
            "n": len(cases)}


def feature_value_cases(samples: int, company: int
                        ) -> list[tuple[str, str, Scene, tuple[str, ...]]]:
    """Held-out one-creature scenes for every nameable value of eyes, ears, mouth and marks:
    (feature, value, scene, the features its caption names), that feature named with
    `company` others of the creature's nameable ones."""
    rng = random.Random(f"held-out-feature-values-{company}")
    cases = []
    for feature, table in CHARACTER_WORDS.items():
        if feature in FACE_ONLY:  # a face's identity: `identity_feature_cases`
            continue
        for value in table:
            for _ in range(samples):
                scene = random_scene(rng, max_objects=1, style_probability=0.0)
                while scene.objects[0].kind != "creature":
                    scene = random_scene(rng, max_objects=1, style_probability=0.0)
                obj = replace(scene.objects[0],
                              features=replace(scene.objects[0].features, **{feature: value}))
                options = nameable_features(obj)
                others = rng.sample([o for o in options if o != feature], company)
                named = tuple(sorted((feature, *others), key=options.index))
                cases.append((feature, value, replace(scene, objects=(obj,)), named))
    return cases


def feature_values(model: DiffusionModel, checker, samples: int = 30, batch: int = 25) -> dict:
    """Per value of each discrete creature feature, the share of generations drawn with it,
    named alone and beside two other fine features (`feature_value_cases`)."""
    figure: dict = {"n_per_value": samples}
    for label, company in (("alone", 0), ("beside_two", 2)):
        cases = feature_value_cases(samples, company)
        hits: dict[str, dict[str, list[bool]]] = {}
        for start in range(0, len(cases), batch):
            chunk = cases[start:start + batch]
            prompts = [grounded_caption(scene, fine={scene.objects[0].position: named})[0]
                       for _, _, scene, named in chunk]
            images = model.decode(generate(model, prompts, seed=start))
            for (feature, value, scene, _), reading in zip(chunk, checker.read(images),
                                                           strict=True):
                hits.setdefault(feature, {}).setdefault(value, []).append(
                    named_feature_right(reading, scene.objects[0], feature))
        figure[label] = {feature: {value: float(np.mean(v)) for value, v in values.items()}
                         for feature, values in hits.items()}
    return figure


def identity_feature_cases(samples: int) -> list[tuple[str, str, Scene]]:
    """Held-out one-face scenes for every nameable value of a face's identity features (hair,
    hair colour, glasses, beard): (feature, value, scene), `samples` of each, the face's other
    parts as drawn. Only faces on which the value shows are kept (no hair colour on a bald,
    beardless face), as a caption names only those."""
    rng = random.Random("held-out-identity-features")
    cases = []
    for feature in FACE_ONLY:
        for value in CHARACTER_WORDS[feature]:
            while sum(1 for f, v, _ in cases if (f, v) == (feature, value)) < samples:
                scene = random_scene(rng, max_objects=1, style_probability=0.0,
                                     identities=True)
                (obj,) = scene.objects
                if obj.kind != "face":
                    continue
                obj = replace(obj, features=replace(obj.features, **{feature: value}))
                if feature in nameable_features(obj):
                    cases.append((feature, value, replace(scene, objects=(obj,))))
    return cases


def identity_prompt(scene: Scene, feature: str) -> str:
    """The caption of a one-face scene naming one identity feature ("a big green blond face
    on the left with sky background")."""
    return grounded_caption(scene, fine={scene.objects[0].position: (feature,)})[0]


def identity_features(model: DiffusionModel, checker, samples: int = 40,
                      batch: int = 25) -> dict:
    """Per identity feature of a face (and per value), the share of generations drawn with the
    value its caption names alone (`identity_feature_cases`); `lowest` is the weakest
    feature's share, the figure each feature must reach."""
    cases = identity_feature_cases(samples)
    hits: dict[str, dict[str, list[bool]]] = {}
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        prompts = [identity_prompt(scene, feature) for feature, _, scene in chunk]
        images = model.decode(generate(model, prompts, seed=start))
        for (feature, value, scene), reading in zip(chunk, checker.read(images), strict=True):
            hits.setdefault(feature, {}).setdefault(value, []).append(
                named_feature_right(reading, scene.objects[0], feature))
    per_feature = {feature: float(np.mean([hit for v in values.values() for hit in v]))
                   for feature, values in hits.items()}
    return {"per_feature": per_feature, "lowest": min(per_feature.values()), "target": 0.8,
            "per_value": {feature: {value: float(np.mean(v)) for value, v in values.items()}
                          for feature, values in hits.items()},
            "n_per_value": samples, "n": len(cases)}


def patterned_scenes(count: int) -> list[Scene]:
    """Held-out one-object scenes of a patterned shape (no character), none of them with the
    reserved object's look, whose full name training captions never give."""
    rng = random.Random("held-out-patterned")
    scenes = []
    while len(scenes) < count:
        scene = random_scene(rng, max_objects=1, style_probability=0.0)
        (obj,) = scene.objects
        if nameable_features(obj) == ("pattern",) and not is_reserved_object_look(obj):
            scenes.append(scene)
    return scenes


def patterned_parts(reading, obj) -> dict[str, bool]:
    """Which parts of a patterned shape the object read at its place shows (kind, colour,
    pattern, pattern colour), and whether its body and pattern colours came out the other way
    round ("swapped": the words' colours bound to the wrong parts)."""
    got = reading.object_at(obj.position)
    pattern_colour = colour_word(obj.pattern_rgb)
    if got is None:
        return dict.fromkeys(("kind", "colour", "pattern", "pattern_colour", "swapped"), False)
    return {"kind": got.kind == obj.kind,
            "colour": got.colour == obj.colour,
            "pattern": got.pattern == obj.pattern,
            "pattern_colour": got.pattern_colour == pattern_colour,
            "swapped": (got.colour, got.pattern_colour) == (pattern_colour, obj.colour)}


def sample_photos(which: str) -> list[Image.Image]:
    """A reserved concept's shipped sample photos, in their files' order."""
    return [Image.open(path).convert("RGB") for path in sorted((SAMPLES_DIR / which).glob("*.png"))]


def captioner_words(model: DiffusionModel, which: str) -> str:
    """The words the model's captioner gives most often for a reserved concept's sample
    photos: where learning starts that concept's word."""
    from collections import Counter

    from engine.captioning import load_captioner

    captioner = load_captioner(model.source)
    words = Counter(captioner.subject(photo, "object").words for photo in sample_photos(which))
    return words.most_common(1)[0][0]


def plain_words(model: DiffusionModel, checker, count: int, samples: int = 20,
                batch: int = 25) -> dict:
    """What the model draws from words alone. Patterned shapes named in full: the share drawn
    whole, per pattern, and the share showing each of `patterned_parts`. The reserved creature and
    object in their captioner's words, on the concept figure's prompt: the share shown whole,
    what learning a word starts from."""
    from world.checker import shows_reserved

    scenes = patterned_scenes(count)
    drawn: dict[str, list[dict[str, bool]]] = {}
    for start in range(0, len(scenes), batch):
        chunk = scenes[start:start + batch]
        prompts = [grounded_caption(scene, fine={scene.objects[0].position: ("pattern",)})[0]
                   for scene in chunk]
        images = model.decode(generate(model, prompts, seed=start))
        for scene, reading in zip(chunk, checker.read(images), strict=True):
            drawn.setdefault(scene.objects[0].pattern, []).append(
                patterned_parts(reading, scene.objects[0]))
    every = [parts for cases in drawn.values() for parts in cases]
    reserved = {}
    for which in ("creature", "object"):
        words = captioner_words(model, which)
        prompt = CONCEPT_PROMPT.format(words)
        readings = checker.read(model.decode(generate(model, [prompt] * samples, seed=1)))
        reserved[which] = {"words": words, "shown": float(np.mean(
            [shows_reserved(reading, which, "left") for reading in readings]))}
    return {"patterned_whole": float(np.mean([is_whole(parts) for parts in every])),
            "per_pattern": {pattern: float(np.mean([is_whole(parts) for parts in cases]))
                            for pattern, cases in sorted(drawn.items())},
            "patterned_parts": {part: float(np.mean([parts[part] for parts in every]))
                                for part in every[0]},
            "n": len(scenes), "reserved": reserved, "samples": samples}


def is_whole(parts: dict[str, bool]) -> bool:
    """A patterned shape drawn whole: every part of `patterned_parts` but the swap."""
    return all(value for part, value in parts.items() if part != "swapped")


def fine_through_vae(model: DiffusionModel, checker, count: int,
                     identity_samples: int = 40) -> dict:
    """Share of `fine_features`' named features the checker still reads right once the true
    rendering has been through the VAE: a ceiling the UNet cannot beat, whatever its training
    (`on_renders`: the same reading of the renderings themselves, the checker's own share).
    `identity`: the same for `identity_features`' faces (`identity_samples` per value)."""
    through, direct = features_through_vae(model, checker, fine_feature_scenes(count))
    identity = [(scene, (feature,)) for feature, _, scene in
                identity_feature_cases(identity_samples)]
    identity_through, identity_direct = features_through_vae(model, checker, identity)
    every = [hit for hits in through.values() for hit in hits]
    return {"right": float(np.mean(every)), "n_features": len(every),
            "per_feature": {k: float(np.mean(v)) for k, v in through.items()},
            "on_renders": float(np.mean([hit for hits in direct.values() for hit in hits])),
            "n": count,
            "identity": {"per_feature": {k: float(np.mean(v))
                                         for k, v in identity_through.items()},
                         "on_renders": {k: float(np.mean(v))
                                        for k, v in identity_direct.items()},
                         "n": len(identity)}}


def features_through_vae(model: DiffusionModel, checker,
                         cases: list[tuple[Scene, tuple[str, ...]]], batch: int = 50
                         ) -> tuple[dict[str, list[bool]], dict[str, list[bool]]]:
    """Per named feature of one-object scenes, whether the checker reads it right on the true
    rendering after the VAE's round trip, and on the rendering itself."""
    through: dict[str, list[bool]] = {}
    direct: dict[str, list[bool]] = {}
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        images = [render(scene, model.image_size).image for scene, _ in chunk]
        trips = [model.decode(model.encode_image(image))[0] for image in images]
        for (scene, chosen), after, before in zip(chunk, checker.read(trips),
                                                  checker.read(images), strict=True):
            for feature in chosen:
                for table, reading in ((through, after), (direct, before)):
                    table.setdefault(feature, []).append(
                        named_feature_right(reading, scene.objects[0], feature))
    return through, direct


def named_styles(model: DiffusionModel, checker, scenes: list[Scene], batch: int = 25) -> dict:
    """Per nameable style, the share of generations of the scenes' captions "... in <style>
    style" that the checker reads in that style."""
    per_style = {}
    for style in NAMED_STYLES + FINE_STYLES:
        prompts = [f"{caption(replace(scene, style=None))} in {style} style" for scene in scenes]
        hits = []
        for start in range(0, len(prompts), batch):
            images = model.decode(generate(model, prompts[start:start + batch], seed=start))
            hits += [reading.style == style for reading in checker.read(images)]
        per_style[style] = float(np.mean(hits))
    return {"right": float(np.mean(list(per_style.values()))), "per_style": per_style,
            "n": len(scenes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--count", type=int, default=200, help="held-out scenes per figure")
    parser.add_argument("--only", default=",".join(FIGURES))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--card", action="store_true",
                        help="write the figures into the model folder's README.md")
    args = parser.parse_args()
    wanted = args.only.split(",")
    unknown = sorted(set(wanted) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    if args.card and set(wanted) != set(FIGURES):
        # a partial run would replace the card's whole figures section with its few figures
        parser.error("--card rewrites the model card's figures, so it measures every figure: "
                     "leave out --only (a partial run can write its figures with --json FILE)")
    model = load_model(args.model)
    scenes = held_out_scenes(args.count)
    checker = None
    if {"text_to_image", "checker", "concepts", "fine_features", "identity_features",
            "feature_values", "plain_words", "fine_through_vae", "styles"} & set(wanted):
        from world.checker import Checker

        checker = Checker.load(Path(model.source) / "captioner")
    figures: dict[str, dict] = {}
    runners = {
        "vae": lambda: vae_psnr(model, scenes),
        "text_to_image": lambda: text_to_image(model, checker, scenes),
        "checker": lambda: checker_agreement(checker, args.count, Path(model.source)),
        "null_text": lambda: null_text_psnr(model, scenes[: max(1, args.count // 10)]),
        "concepts": lambda: reserved_concepts(model, checker),
        "attention": lambda: attention_in_mask(model, scenes[: max(1, args.count // 4)]),
        "fine_features": lambda: fine_features(model, checker, args.count),
        "identity_features": lambda: identity_features(model, checker),
        "feature_values": lambda: feature_values(model, checker),
        "plain_words": lambda: plain_words(model, checker, args.count),
        "fine_through_vae": lambda: fine_through_vae(model, checker, args.count),
        "styles": lambda: named_styles(model, checker, scenes[: max(1, args.count // 4)]),
    }
    for name in wanted:
        start = time.perf_counter()
        figures[name] = runners[name]()
        figures[name]["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(figures[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.card:
        command = "python -m world.evaluate " + " ".join(
            f"--{k} {v}" for k, v in (("count", args.count), ("only", args.only)))
        write_card_figures(Path(model.source) / "README.md", figures, command)


CARD_START, CARD_END = "<!-- figures:start -->", "<!-- figures:end -->"
CARD_TARGETS = {
    ("vae", "psnr_db"): ">= 30 dB", ("text_to_image", "objects_right"): ">= 0.90",
    ("text_to_image", "background_right"): ">= 0.90",
    ("checker", "mean_field_agreement"): ">= 0.98", ("checker", "caption_exact"): ">= 0.90",
    ("null_text", "psnr_db"): ">= 28 dB", ("attention", "share_inside"): ">= 0.60",
    ("fine_features", "right"): ">= 0.80", ("identity_features", "lowest"): ">= 0.80",
}


def per_field(fields: dict[str, float]) -> str:
    """'background 1.000, mouth 0.750': a card's list of per-field shares."""
    return ", ".join(f"{name} {value:.3f}" for name, value in fields.items())


def identity_notes(figures: dict) -> list[str]:
    """The card's sentence on a face's identity features: drawn right per feature and value,
    and the ceiling through the VAE; none without the identity figure."""
    identity = figures.get("identity_features", {})
    if "per_value" not in identity:
        return []
    drawn = "; ".join(
        f"{feature} {identity['per_feature'][feature]:.2f} ("
        + ", ".join(f"{value} {share:.2f}" for value, share in values.items()) + ")"
        for feature, values in identity["per_value"].items())
    text = (f"Faces' identity features named alone drawn right ({identity['n_per_value']} "
            f"generations a value): {drawn}")
    ceiling = figures.get("fine_through_vae", {}).get("identity")
    if ceiling:
        text += "; read right on the true pictures after a VAE round trip (the ceiling): " + (
            ", ".join(f"{feature} {share:.2f}"
                      for feature, share in ceiling["per_feature"].items()))
        text += "; on the renderings themselves: " + ", ".join(
            f"{feature} {share:.2f}" for feature, share in ceiling["on_renders"].items())
    return ["", text + "."]


def write_card_figures(card: Path, figures: dict, command: str) -> None:
    """Replace the figures section of a model card with freshly measured ones."""
    import platform

    rows = ["| figure | measured | target | time (s) |", "| --- | --- | --- | --- |"]
    for (name, metric), target in CARD_TARGETS.items():
        if name in figures and metric in figures[name]:
            rows.append(f"| {name}: {metric} | {figures[name][metric]:.3f} | {target} | "
                        f"{figures[name]['wall_seconds']} |")
    for concept, result in figures.get("concepts", {}).get("concepts", {}).items():
        rows.append(f"| concepts: {concept} shown | {result['shown']:.3f} | "
                    f">= {result.get('target', 0.8):.2f} | {result['seconds']:.0f} (learning) |")
    notes = []
    checker = figures.get("checker", {})
    if "fields" in checker:
        notes = ["", f"Checker agreement per field: {per_field(checker['fields'])}."]
    if "through_vae_fields" in checker:
        notes += ["", "The same after the VAE's round trip (what generated pictures can look "
                  f"like): {per_field(checker['through_vae_fields'])} "
                  f"(mean {checker['through_vae_agreement']:.3f})."]
    for name, what in (("fine_features", "Named fine features drawn right"),
                       ("fine_through_vae", "The same features read right on the true pictures "
                                            "after a VAE round trip (the ceiling)")):
        figure = figures.get(name, {})
        if "per_feature" in figure:
            named = ", ".join(f"{feature} {value:.2f}"
                              for feature, value in figure["per_feature"].items())
            direct = (f"; the checker reads {figure['on_renders']:.2f} of them right on the "
                      "renderings themselves" if "on_renders" in figure else "")
            notes += ["", f"{what}, per feature: {named} (all {figure['right']:.2f}){direct}."]
    notes += identity_notes(figures)
    values = figures.get("feature_values", {})
    if "alone" in values:
        notes += ["", f"Creatures' feature values drawn right ({values['n_per_value']} "
                  "generations each), named alone / beside two other fine features: "
                  + "; ".join(f"{feature} (" + ", ".join(
                      f"{value} {share:.2f} / {values['beside_two'][feature][value]:.2f}"
                      for value, share in shares.items()) + ")"
                      for feature, shares in values["alone"].items()) + "."]
    plain = figures.get("plain_words", {})
    if "patterned_whole" in plain:
        patterns = ", ".join(f"{pattern} {share:.2f}"
                             for pattern, share in plain["per_pattern"].items())
        words = "; ".join(f"the {which} in \"{r['words']}\" {r['shown']:.2f}"
                          for which, r in plain["reserved"].items())
        parts = ", ".join(f"{part} {share:.2f}"
                          for part, share in plain["patterned_parts"].items())
        notes += ["", f"From words alone: patterned shapes named in full drawn whole "
                  f"{plain['patterned_whole']:.2f} ({patterns}; per part {parts}); the "
                  "reserved concepts asked for in their "
                  f"captioner's words, shown whole in {plain['samples']} generations: {words}."]
    if "per_style" in figures.get("styles", {}):
        styles = ", ".join(f"{style} {value:.2f}"
                           for style, value in figures["styles"]["per_style"].items())
        notes += ["", f"Styles named in the prompt drawn in that style: {styles}."]
    concept_parts = [f"{concept} ({', '.join(f'{k} {v:.2f}' for k, v in r['parts'].items())})"
                     for concept, r in figures.get("concepts", {}).get("concepts", {}).items()
                     if "parts" in r]
    if concept_parts:
        notes += ["", "Reserved concepts, share of generations showing each part: "
                  + "; ".join(concept_parts) + "."]
    elsewhere = [f"{concept} ({', '.join(f'{k} {v:.2f}' for k, v in r['elsewhere'].items())})"
                 for concept, r in figures.get("concepts", {}).get("concepts", {}).items()
                 if "elsewhere" in r]
    if elsewhere:
        notes += ["", "The same words asked for at other places and backgrounds, share shown "
                  "whole: " + "; ".join(elsewhere) + "."]
    machine = f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
    section = "\n".join([CARD_START, f"Measured {time.strftime('%Y-%m-%d')} on {machine} with "
                          f"`{command}`:", "", *rows, *notes, CARD_END])
    text = card.read_text() if card.exists() else f"{CARD_START}\n{CARD_END}\n"
    if CARD_START not in text:
        text += f"\n{CARD_START}\n{CARD_END}\n"
    head, rest = text.split(CARD_START, 1)
    card.write_text(head + section + rest.split(CARD_END, 1)[1])


if __name__ == "__main__":
    main()
