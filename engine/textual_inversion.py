"""Learning a concept from a few photos: textual inversion (Gal et al. 2022), focused on the thing.

A new word of n vectors is found by gradient descent on the denoising loss of the frozen model.
Only the n vectors are trained: they live in their own fp32 parameter, and a forward hook on the
text encoder's token embedding puts them at the word's positions of each caption. The shared
model is never modified (no tokens are added, no embedding row is written), so other jobs can
keep using it while a concept is learned.

Plain textual inversion captions every photo "a photo of a <word>", so the word also has to
explain whatever else the photos show (their backgrounds, above all). Here the word is made to
explain only its subject:

- Captions per photo. A model's captioner (engine/captioning.py) words each training view with
  the new word in the subject's place ("a small <word> on a sofa"), or in a share of the draws
  (`ConceptSettings.context_share`, none by default) in the contexts the captioner says edits
  will put it in (beside other things, worded as an add is); a user's description of a photo
  is added to the generic templates ("a photo of a <word>" + "on a beach"); without either,
  the generic templates. A style's captions name the content and put
  the word in the style's place ("a dog on a sofa in <word> style").
- A loss focused on the subject, for objects and persons: the denoising error is weighted by the
  subject's mask from the captioner, else, for a person, by the head and shoulders a face
  detector (and a segmenter) find in the portrait (engine/faces.py says why a detector), else by
  the word's own cross-attention (`attention_focus`).
  A style covers the whole picture, so its loss is the plain one, drawn at high noise only
  (`lowest_timestep`) and with offset noise (`ConceptSettings.style_noise_offset`): there the
  picture's look, its tint above all, is the words' to set.
- It starts from what the subject looks like: from the captioner's words for it ("small fluffy
  grey cat", or for a style the nearest look the model has a word for), or the user's
  initializer, one vector per word, so learning only has to find what those words miss.
- It stops when learned: a fixed probe of draws is scored every few steps, and learning ends when
  its loss stops improving; the best vectors seen are kept. A style learns faster and to the last
  step instead (`ConceptSettings.style_learning_rate`, `style_early_stop_window`): its
  high-noise loss levels off while the word still draws the look it started from.
- Several candidates, if asked (`ConceptSettings.candidates`): words learned together in one
  batch, each from its own draws and start noise and each stopping on its own, since the same
  photos learned with another draw can give a much better or worse word; the self-check keeps
  the one drawn most like the photos (engine/self_check.py).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from PIL import Image

from engine.attention_control import AttentionStore, controlled_attention, map_resolution
from engine.captioning import PLACEHOLDER, Captioner
from engine.concepts import Concept, concept_kind, concept_name
from engine.config import ConceptSettings
from engine.errors import (
    ImageError,
    InconsistentImagesError,
    NotEnoughImagesError,
    TooManyImagesError,
)
from engine.faces import PersonFinder
from engine.images import fit_square, read_image
from engine.model import DiffusionModel, image_to_tensor

OBJECT_TEMPLATES = (
    "a photo of a {}",
    "a photo of the {}",
    "a picture of a {}",
    "a close-up photo of a {}",
    "a good photo of a {}",
    "a {}",
)
PERSON_TEMPLATES = (
    "a photo of {}",
    "a portrait of {}",
    "a close-up photo of {}",
    "a picture of {}",
    "a good photo of {}",
    "{}",
)
STYLE_TEMPLATES = (
    "a painting in the style of {}",
    "a picture in the style of {}",
    "an artwork in the style of {}",
    "a photo in the style of {}",
    "a painting in {} style",
    "a picture in {} style",
)
ODD_ONE_OUT = 0.35  # a photo this far below the set's typical consistency is the odd one
TEMPLATES = {"object": OBJECT_TEMPLATES, "person": PERSON_TEMPLATES, "style": STYLE_TEMPLATES}
PREVIEW_TEMPLATES = {"object": "a {}", "person": "a picture of {}",
                     "style": "a picture in {} style"}
ATTENTION_FLOOR = 0.2  # attention focus: the least weight any latent pixel gets
PROBE_DRAWS = 16  # draws in the fixed probe that decides when learning has levelled off
CANDIDATE_SEED_STEP = 7919  # candidate k draws with seed + k * this
STYLE_SHARE_OF_PROMPT = 5  # a style's word takes at most 1/5 of the model's tokens


@dataclass
class ConceptProgress:
    """What a progress callback is told after each training step."""

    step: int  # steps done
    total: int  # steps planned (early stop may end sooner)
    loss: float  # smoothed
    preview: Image.Image | None = None  # every settings.preview_every steps
    # The step learning ends at unless the probe loss improves again (early stop), at most
    # `total`: what a progress bar should show as its end (0: not told, read `total`).
    stops_by: int = 0


@dataclass
class LearnedWord:
    """A learned concept and how the learning went."""

    concept: Concept
    losses: list[float]  # one per step
    steps: int
    stopped_early: bool
    reason: str  # "done", "levelled off" or "cancelled"
    warnings: list[str] = field(default_factory=list)  # for the user, in plain words
    preview_caption: str | None = None  # a caption with "{}" that shows the concept well
    # "subject masks", "head and shoulders" (a person's, engine/faces.py), "word attention" or
    # "whole picture"
    focus: str = "whole picture"
    start_words: str | None = None  # the words the vectors started from, if any
    # every candidate word learned together (ConceptSettings.candidates), `concept` among them:
    # the one with the lowest probe loss, until a self-check picks (engine/self_check.py)
    candidates: list[Concept] = field(default_factory=list)


@dataclass
class TrainingSet:
    """The views learning sees: latents, each view's captions, and where its loss looks."""

    latents: torch.Tensor  # (V, C, h, w)
    captions: list[tuple[str, ...]]  # per view, captions with "{}" for the word
    masks: torch.Tensor | None  # (V, h, w) subject weights in [0, 1]; None: no view has one
    has_mask: torch.Tensor  # (V,) bool: which views' masks are real
    focus: str  # as LearnedWord.focus
    words: str | None = None  # the captioner's words for the subject, the most common among views
    # per view, the captioner's contexts for its subject (Subject.contexts); empty: none
    contexts: list[tuple[str, ...]] = field(default_factory=list)


def learn_concept(model: DiffusionModel, images: Sequence[Image.Image], name: str,
                  kind: str = "object", settings: ConceptSettings | None = None,
                  initializer: str | None = None,
                  progress: Callable[[ConceptProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  captioner: Captioner | None = None,
                  descriptions: Sequence[str | None] | None = None,
                  people: PersonFinder | None = None) -> LearnedWord:
    """Learn a word for the thing (or person, or style) shown in `images`.

    `initializer` (words, e.g. "cat") is where the vectors start, else the captioner's words
    for the subject (`initial_vectors`). `captioner` (the model's, if it has one) captions and
    masks each photo; `descriptions`, one per photo (or None), say what else a photo shows,
    e.g. "on a beach" ("a dog on a sofa" for a style). `people` finds a person's head and
    shoulders in portraits, for the person kind's loss (engine/faces.py). Deterministic for a given
    `settings.seed` on a given device. The model is left unchanged. Raises
    NotEnoughImagesError, TooManyImagesError, ConceptNameError, and with `settings.strict`
    InconsistentImagesError; other doubts about the photos become warnings.
    """
    settings = settings or ConceptSettings()
    name = concept_name(name)
    kind = concept_kind(kind)
    if descriptions is not None and len(descriptions) != len(images):
        raise ValueError("give one description (or None) per photo")
    warnings = check_images(images, settings)
    data = training_set(model, images, kind, settings, captioner, descriptions, people)
    # one stream of draws per candidate, on the CPU: the same draws on any device
    generators = [torch.Generator().manual_seed(settings.seed + CANDIDATE_SEED_STEP * k)
                  for k in range(max(1, settings.candidates))]
    start_words = initializer or data.words
    length = word_length(model, kind, settings)
    starts = []
    for generator in generators:
        start, note = initial_vectors(model, length, start_words, generator,
                                      length if kind == "style" else settings.description_vectors)
        starts.append(start)
    warnings += [note] if note else []
    count = len(starts[0])
    vectors = torch.nn.Parameter(torch.stack(starts).to(model.device))  # (K, n, d)
    optimizer = torch.optim.AdamW([vectors], lr=settings.learning_rate_for(kind), weight_decay=0.0)
    # A half-precision UNet passes small gradients back through fp16: scale the loss.
    scaler = torch.amp.GradScaler("cuda", enabled=model.device.type == "cuda"
                                  and model.dtype == torch.float16)
    texts = sorted({c for captions in (*data.captions, *data.contexts) for c in captions})
    ids, slots = template_ids(model, texts, count)
    choices = CaptionChoices.of(data, texts, settings.context_share)
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    first_step = lowest_timestep(kind, settings, scheduler)
    offset = settings.style_noise_offset if kind == "style" else 0.0
    probe = Draws.random(data, choices, scheduler, PROBE_DRAWS,
                         torch.Generator().manual_seed(settings.seed + 1), first_step, offset)
    window = settings.early_stop_window_for(kind)
    check_every = max(1, min(settings.check_every, window or 1))

    preview_caption = (next((c for captions in data.captions for c in captions), None)
                       if captioner is not None else None)
    losses: list[float] = []
    smoothed, reason = 0.0, "done"
    track = [EarlyStop(vectors[k].detach().clone()) for k in range(len(generators))]
    active = list(range(len(generators)))  # the candidates still learning
    for step in range(1, settings.steps + 1):
        if should_stop is not None and should_stop():
            reason = "cancelled"
            break
        draws = Draws.join([Draws.random(data, choices, scheduler, settings.batch_size,
                                         generators[k], first_step, offset) for k in active])
        owners = torch.tensor(active).repeat_interleave(settings.batch_size)
        loss = focused_losses(model, scheduler, data, draws, ids, slots,
                              vectors[owners.to(vectors.device)]).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
        smoothed = 0.9 * smoothed + 0.1 * losses[-1]
        if progress is not None:
            show = settings.preview_every > 0 and step % settings.preview_every == 0
            preview = (preview_image(model, vectors[active[0]].detach(), kind,
                                     settings.preview_steps, seed=settings.seed,
                                     template=preview_caption)
                       if show else None)
            stops_by = (min(settings.steps,
                            max(max(track[k].best_step for k in active), check_every) + window)
                        if window > 0 else settings.steps)
            progress(ConceptProgress(step, settings.steps, smoothed / (1 - 0.9**step), preview,
                                     stops_by))
        if window > 0 and step % check_every == 0:
            with torch.no_grad():
                rows = torch.tensor(active).repeat_interleave(len(probe.views))
                scores = focused_losses(model, scheduler, data, Draws.join([probe] * len(active)),
                                        ids, slots, vectors[rows.to(vectors.device)])
            for k, score in zip(active, scores.view(len(active), -1).mean(1).tolist(),
                                strict=True):
                track[k].score(step, score, vectors[k], settings.early_stop_tolerance)
            for k in active:
                track[k].levelled = step - track[k].best_step >= window
            active = [k for k in active if not track[k].levelled]
            if not active:
                reason = "levelled off"
                break

    finals = [t.kept if t.levelled else vectors[k].detach() for k, t in enumerate(track)]
    candidates = [Concept(name, kind, final.float().cpu(), steps=len(losses),
                          base_model=model.source) for final in finals]
    chosen = min(range(len(track)), key=lambda k: (track[k].lowest, k))
    concept = candidates[chosen]
    return LearnedWord(concept, losses, len(losses), reason != "done", reason, warnings,
                       preview_caption, data.focus, start_words, candidates)


@dataclass
class EarlyStop:
    """One candidate's early stopping: its probe scores and the vectors of its lowest."""

    kept: torch.Tensor  # the vectors at the lowest probe score so far
    lowest: float = float("inf")
    best: float = float("inf")  # the last score that improved by the tolerance
    best_step: int = 0
    levelled: bool = False  # no improvement for a window: it learns no further

    def score(self, step: int, score: float, vectors: torch.Tensor, tolerance: float) -> None:
        """Take the probe score of `vectors` at `step`."""
        if self.best == float("inf") or score < self.best * (1 - tolerance):
            self.best, self.best_step = score, step
        if score < self.lowest:
            self.lowest, self.kept = score, vectors.detach().clone()


def word_length(model: DiffusionModel, kind: str, settings: ConceptSettings) -> int:
    """How many tokens the new word gets: the kind's setting, and for a style at most a fifth
    of what the model reads, since a style's word stands beside a whole caption of the
    picture's content and a restyle of a long caption must still fit."""
    count = settings.vectors_for(kind)
    if kind == "style":
        count = min(count, max(1, model.max_tokens // STYLE_SHARE_OF_PROMPT))
    return count


def lowest_timestep(kind: str, settings: ConceptSettings, scheduler: DDIMScheduler) -> int:
    """The least timestep learning draws: a style learns from the noisiest part of the
    schedule only (`ConceptSettings.style_timesteps_from`), an object or person from all of it."""
    if kind != "style":
        return 0
    steps = scheduler.config.num_train_timesteps
    return min(steps - 1, max(0, round(settings.style_timesteps_from * steps)))


def learn_concept_from_files(model: DiffusionModel, paths: Sequence[str | Path], name: str,
                             kind: str = "object", settings: ConceptSettings | None = None,
                             **kwargs) -> LearnedWord:
    """`learn_concept` on image files, each read safely; ImageError names an unusable file."""
    settings = settings or ConceptSettings()
    _check_count(len(paths), settings)
    images = []
    for path in paths:
        try:
            images.append(read_image(path))
        except ImageError as exc:
            raise ImageError(f"{Path(path).name}: {exc}") from exc
    return learn_concept(model, images, name, kind, settings, **kwargs)


def training_set(model: DiffusionModel, images: Sequence[Image.Image], kind: str,
                 settings: ConceptSettings, captioner: Captioner | None = None,
                 descriptions: Sequence[str | None] | None = None,
                 people: PersonFinder | None = None) -> TrainingSet:
    """Every training view of every photo with its latent, captions and subject mask.

    Views (the photo, its mirror, crops) are captioned one by one, since a mirror or a crop moves
    the subject. A view the captioner finds no subject in, or every view without a captioner,
    gets the kind's templates, with the photo's description if the user gave one. A person's
    view the captioner gives no mask for takes the head and shoulders `people` finds in the
    whole photo (engine/faces.py), cropped and mirrored as the view is: a detector sees a face
    better in the photo than in a model-sized crop of it.
    """
    rng = random.Random(settings.seed)
    views, captions, contexts, masks = [], [], [], []
    described: Counter[str] = Counter()
    found_people = 0
    for index, image in enumerate(images):
        description = (descriptions[index] if descriptions else None) or ""
        state = rng.getstate()
        photo_views = augmented_views(image, settings.augment, model.image_size, rng)
        person = people.mask(image) if people is not None and kind == "person" else None
        person_views = (_mask_views(person, state, settings.augment, model.image_size)
                        if person is not None else [None] * len(photo_views))
        for view, person_view in zip(photo_views, person_views, strict=True):
            subject = captioner.subject(view, kind) if captioner is not None else None
            views.append(view)
            captions.append((subject.caption,) if subject is not None
                            else described_templates(kind, description))
            contexts.append(subject.contexts if subject is not None else ())
            mask = subject.mask if subject is not None and kind != "style" else None
            if mask is None and person_view is not None:
                mask, found_people = person_view, found_people + 1
            masks.append(mask)
            if subject is not None and subject.words:
                described[subject.words] += 1
    latents = encode_views(model, views)
    side = latents.shape[-1]
    has_mask = torch.tensor([m is not None for m in masks])
    stacked = None
    if has_mask.any():
        stacked = torch.ones(len(views), side, side)
        for i, mask in enumerate(masks):
            if mask is not None:
                stacked[i] = latent_mask(mask, side)
        stacked = stacked.to(model.device)
    if kind == "style":
        focus = "whole picture"
    elif has_mask.all():
        focus = "head and shoulders" if found_people == len(views) else "subject masks"
    else:
        focus = "word attention"
    words = described.most_common(1)[0][0] if described else None
    return TrainingSet(latents, captions, stacked, has_mask.to(model.device), focus, words,
                       contexts)


def described_templates(kind: str, description: str = "") -> tuple[str, ...]:
    """The kind's caption templates; with a user's description of the photo, worded into each.

    An object's or person's description says what else the photo shows ("on a beach"); a
    style's says what the picture shows ("a dog on a sofa").
    """
    description = " ".join(description.replace("{", "").replace("}", "").split())
    if not description:
        return TEMPLATES[kind]
    if kind == "style":
        return (f"{description} in {PLACEHOLDER} style",
                f"{description} in the style of {PLACEHOLDER}")
    return tuple(f"{template} {description}" for template in TEMPLATES[kind])


def _mask_views(mask: np.ndarray, state: object, count: int, size: int) -> list[np.ndarray]:
    """A photo's mask cut into the same views as the photo: `augmented_views` again, with the
    random state the photo's views were drawn with."""
    rng = random.Random()
    rng.setstate(state)
    picture = Image.fromarray((np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
    return [np.asarray(view, np.float32) / 255 for view in
            augmented_views(picture, count, size, rng)]


def latent_mask(mask: np.ndarray, side: int) -> torch.Tensor:
    """A photo-sized (H, W) mask in [0, 1] as the (side, side) share of each latent pixel."""
    tensor = torch.as_tensor(np.asarray(mask, np.float32))[None, None]
    return F.adaptive_avg_pool2d(tensor.clamp(0, 1), side)[0, 0]


def check_images(images: Sequence[Image.Image], settings: ConceptSettings) -> list[str]:
    """Warnings about the photo set; errors for too few, too many or (strict) unrelated photos."""
    _check_count(len(images), settings)
    scores = image_consistency(images)
    typical = float(np.median(scores))
    if typical < settings.consistency_threshold:
        message = ("these photos have little in common; a concept is learned best from photos "
                   "of the same thing")
    else:
        odd = [i + 1 for i, score in enumerate(scores) if score < ODD_ONE_OUT * typical]
        if not odd:
            return []
        message = (f"photo{'s' if len(odd) > 1 else ''} {', '.join(map(str, odd))} "
                   f"look{'' if len(odd) > 1 else 's'} unlike the others; a concept is learned "
                   "best from photos of the same thing")
    if settings.strict:
        raise InconsistentImagesError(message)
    return [message]


def image_consistency(images: Sequence[Image.Image]) -> list[float]:
    """Per image, the mean overlap (0..1) of its foreground colours with the other images'.

    Colours covering more than a fifth of a photo (its background, mostly) are left out, since
    a thing is best learned from photos in varied settings. A cheap, model-free check: it
    catches a photo of something else among the set, not two objects of the same colours.
    """
    hists = torch.stack([_foreground_histogram(image) for image in images])
    overlap = torch.minimum(hists[:, None], hists[None]).sum(-1)  # [N, N]
    others = (overlap.sum(1) - overlap.diagonal()) / max(len(images) - 1, 1)
    return others.tolist()


def _foreground_histogram(image: Image.Image, bins: int = 6,
                          dominant: float = 0.2) -> torch.Tensor:
    thumb = torch.from_numpy(np.array(fit_square(image, 32).convert("RGB"))).reshape(-1, 3)
    q = thumb.long() * bins // 256
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = torch.bincount(index, minlength=bins**3).float() / len(index)
    foreground = torch.where(hist > dominant, torch.zeros_like(hist), hist)
    if foreground.sum() < 0.02:  # a plain picture: its few colours are all there is
        return hist
    return foreground / foreground.sum()


def _check_count(count: int, settings: ConceptSettings) -> None:
    if count < settings.min_images:
        raise NotEnoughImagesError(f"I need at least {settings.min_images} photos of the thing to "
                                   f"learn it; got {count}")
    if count > settings.max_images:
        raise TooManyImagesError(f"please send at most {settings.max_images} photos; got {count}")


def augmented_views(image: Image.Image, count: int, size: int,
                    rng: random.Random) -> list[Image.Image]:
    """`count` training views of an image at `size` px: itself, its mirror, then random crops."""
    views = [fit_square(image, size)]
    if count >= 2:
        views.append(views[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    width, height = image.size
    side = min(width, height)
    left0, top0 = (width - side) / 2, (height - side) / 2
    while len(views) < count:
        crop = side * rng.uniform(0.8, 0.95)
        left, top = left0 + rng.uniform(0, side - crop), top0 + rng.uniform(0, side - crop)
        view = image.crop((round(left), round(top), round(left + crop), round(top + crop)))
        if rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        views.append(fit_square(view, size))
    return views


@torch.no_grad()
def encode_views(model: DiffusionModel, views: Sequence[Image.Image],
                 batch: int = 8) -> torch.Tensor:
    """Scaled VAE latents [N, C, h, w] of model-sized views."""
    pixels = torch.cat([image_to_tensor(view) for view in views])
    latents = [model.vae.encode(chunk.to(model.device, model.dtype)).latent_dist.mean
               for chunk in pixels.split(batch)]
    return torch.cat(latents) * model.vae.config.scaling_factor


def initial_vectors(model: DiffusionModel, count: int, words: str | None,
                    generator: torch.Generator,
                    most: int | None = None) -> tuple[torch.Tensor, str | None]:
    """Starting vectors [n, d] (fp32, CPU) and a warning if `words` were unusable.

    Without words, `count` vectors at the vocabulary's mean embedding. With words (an
    initializer such as "dog", or a description such as "small fluffy grey long-haired
    cat"), one vector per token of them, at least `count` and at most `most`:
    vector i starts at token i (the tokens repeat when they are fewer than `count`, and
    neighbours are averaged when they are more than `most`). A little noise keeps equal
    starts apart.
    """
    table = model.text_encoder.get_input_embeddings().weight.detach()
    ids = model.tokenizer(words, add_special_tokens=False).input_ids if words else []
    note = None
    if ids:
        n = min(max(count, len(ids)), max(most or count, count))
        groups = ([[ids[i % len(ids)]] for i in range(n)] if len(ids) <= n
                  else [[ids[j] for j in part] for part in np.array_split(range(len(ids)), n)])
        base = torch.stack([table[group].float().mean(0) for group in groups]).cpu()
    else:
        base = table.float().mean(0).cpu().expand(count, -1)
        if words:
            note = f"'{words}' gave no words to start from; starting from an average word"
    noise = torch.randn(base.shape, generator=generator)
    scale = 0.01 * base.norm(dim=-1, keepdim=True) / base.shape[-1] ** 0.5
    return base + scale * noise, note


def template_ids(model: DiffusionModel, templates: Sequence[str],
                 count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [T, L] of each template with `count` slots for the word, and the slots' mask.

    The same ids the tokenizer would give `template.format("<word> <word>_1 ...")` with the
    word's tokens installed, without installing anything.
    """
    tokenizer = model.tokenizer
    rows, masks = [], []
    for template in templates:
        before, after = template.split("{}")
        pieces = [tokenizer(text, add_special_tokens=False).input_ids for text in (before, after)]
        row = ([tokenizer.bos_token_id] + pieces[0] + [tokenizer.bos_token_id] * count
               + pieces[1] + [tokenizer.eos_token_id])  # slot ids are placeholders: replaced
        if len(row) > model.max_tokens:
            raise ValueError(f"{template!r} with {count} vectors is longer than "
                             f"{model.max_tokens} tokens")
        mask = [False] * (1 + len(pieces[0])) + [True] * count
        padding = model.max_tokens - len(row)
        rows.append(row + [tokenizer.pad_token_id] * padding)
        masks.append(mask + [False] * (model.max_tokens - len(mask)))
    return (torch.tensor(rows, device=model.device),
            torch.tensor(masks, device=model.device))


def encode_with_vectors(model: DiffusionModel, ids: torch.Tensor, slots: torch.Tensor,
                        vectors: torch.Tensor) -> torch.Tensor:
    """Text-encoder hidden states (B, L, d) of `ids` whose token embeddings at `slots` are
    `vectors` [n, d], or row b's at `vectors[b]` for vectors [B, n, d] (each row of `slots` has
    n True entries); differentiable in `vectors`.
    """
    owner = threading.get_ident()

    def substitute(module, inputs, output):
        if threading.get_ident() != owner:  # another job using the shared encoder meanwhile
            return None
        output = output.clone()
        rows = (vectors.reshape(-1, vectors.shape[-1]) if vectors.dim() == 3
                else vectors.repeat(len(output), 1))
        output[slots] = rows.to(output.dtype)
        return output

    handle = model.text_encoder.get_input_embeddings().register_forward_hook(substitute)
    try:
        return model.text_encoder(ids)[0]
    finally:
        handle.remove()


def denoise(model: DiffusionModel, scheduler: DDIMScheduler, clean: torch.Tensor,
            noise: torch.Tensor, steps: torch.Tensor,
            hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The UNet's prediction for `clean` noised at `steps`, and what it should have predicted."""
    noisy = scheduler.add_noise(clean, noise, steps)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(clean, noise, steps)
    else:
        target = clean
    prediction = model.unet(noisy, steps, encoder_hidden_states=hidden.to(model.dtype)).sample
    return prediction, target


@dataclass(frozen=True)
class CaptionChoices:
    """Which captions each view is paired with: its own, or in `context_share` of the draws
    one of its contexts (as indices into the encoded captions)."""

    own: list[list[int]]  # per view
    contexts: list[list[int]]  # per view; empty: the view has none
    context_share: float

    @classmethod
    def of(cls, data: TrainingSet, texts: Sequence[str], context_share: float
           ) -> CaptionChoices:
        """The choices of a training set whose captions are `texts`, in that order."""
        index = {text: i for i, text in enumerate(texts)}
        contexts = data.contexts or [() for _ in data.captions]
        return cls([[index[c] for c in captions] for captions in data.captions],
                   [[index[c] for c in some] for some in contexts], context_share)

    def pick(self, view: int, which: int, in_context: bool) -> int:
        """The `which`-th (modulo) caption of the view: a context's if `in_context` and the
        view has one, else its own."""
        pool = self.contexts[view] if in_context and self.contexts[view] else self.own[view]
        return pool[which % len(pool)]


@dataclass(frozen=True)
class Draws:
    """One batch of training draws: which view, which of its captions, timestep and noise."""

    views: torch.Tensor  # (B,) view indices
    captions: torch.Tensor  # (B,) caption indices (into the encoded captions)
    steps: torch.Tensor  # (B,) timesteps
    noise: torch.Tensor  # (B, C, h, w)

    @classmethod
    def random(cls, data: TrainingSet, choices: CaptionChoices,
               scheduler: DDIMScheduler, batch: int, generator: torch.Generator,
               lowest_step: int = 0, offset: float = 0.0) -> Draws:
        """Random draws; `choices` say which captions each view may be paired with,
        timesteps are drawn from `lowest_step` to the end of the schedule, and the noise has a
        per-sample, per-channel constant of std `offset` added ("offset noise")."""
        views = torch.randint(len(data.latents), (batch,), generator=generator)
        which = torch.randint(1 << 30, (batch,), generator=generator)
        # drawn only when contexts are wanted: without them, the stream of draws stays the same
        in_context = (torch.rand(batch, generator=generator) < choices.context_share
                      if choices.context_share > 0 else torch.zeros(batch, dtype=torch.bool))
        captions = torch.tensor([choices.pick(v, w, c) for v, w, c in
                                 zip(views.tolist(), which.tolist(), in_context.tolist(),
                                     strict=True)])
        steps = torch.randint(lowest_step, scheduler.config.num_train_timesteps, (batch,),
                              generator=generator)
        noise = torch.randn((batch, *data.latents.shape[1:]), generator=generator)
        if offset:
            noise = noise + offset * torch.randn((batch, noise.shape[1], 1, 1),
                                                 generator=generator)
        return cls(views, captions, steps, noise)

    @classmethod
    def join(cls, parts: Sequence[Draws]) -> Draws:
        """One batch of several batches' draws, in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(*(torch.cat([getattr(p, name) for p in parts])
                     for name in ("views", "captions", "steps", "noise")))


def focused_loss(model: DiffusionModel, scheduler: DDIMScheduler, data: TrainingSet, draws: Draws,
                 ids: torch.Tensor, slots: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """The mean of `focused_losses`."""
    return focused_losses(model, scheduler, data, draws, ids, slots, vectors).mean()


def focused_losses(model: DiffusionModel, scheduler: DDIMScheduler, data: TrainingSet,
                   draws: Draws, ids: torch.Tensor, slots: torch.Tensor,
                   vectors: torch.Tensor) -> torch.Tensor:
    """The denoising error (B,) of each of `draws`, each view under its own caption, where its
    subject is; the word's vectors are [n, d], or [B, n, d] for a word per draw (candidates).

    Each draw's squared error is averaged over its weights: the view's subject mask, else (an
    object or person without a mask) the word's own attention (`attention_focus`), else (a
    style) the whole latent.
    """
    device = data.latents.device
    views = draws.views.to(device)
    clean = data.latents[views]
    captions = draws.captions.to(ids.device)
    hidden = encode_with_vectors(model, ids[captions], slots[captions], vectors)
    noise = draws.noise.to(device, clean.dtype)
    steps = draws.steps.to(device)
    attend = data.focus == "word attention" and not bool(data.has_mask[views].all())
    if attend:
        store = AttentionStore(map_resolution(model.unet))
        with controlled_attention(model.unet, store):
            prediction, target = denoise(model, scheduler, clean, noise, steps, hidden)
        focus = attention_focus(store, slots[captions], clean.shape[-1])
    else:
        prediction, target = denoise(model, scheduler, clean, noise, steps, hidden)
        focus = torch.ones(clean.shape[0], *clean.shape[-2:], device=device)
    if data.masks is not None:
        focus = torch.where(data.has_mask[views][:, None, None], data.masks[views], focus)
    error = (prediction.float() - target.float()).pow(2).mean(1)  # (B, h, w)
    weights = focus.to(error.device, error.dtype)
    return (error * weights).sum((1, 2)) / weights.sum((1, 2)).clamp_min(1e-6)


def attention_focus(store: AttentionStore, slots: torch.Tensor, side: int) -> torch.Tensor:
    """Where each draw's word looks: (B, side, side) weights in [ATTENTION_FLOOR, 1].

    The model-agnostic stand-in for a subject mask. The word's cross-attention (summed over its
    vectors, averaged over heads and the layers at the map resolution) is detached, so the
    weighting is not itself optimised, and scaled to a maximum of 1. Why this and not, say, a
    saliency or segmentation model: it needs nothing but the diffusion model itself, works for
    any subject the word comes to mean, and sharpens as the word does, which keeps the
    background out of the loss once the word has found its subject. The floor keeps every
    pixel in play early on, while the maps are still vague.
    """
    maps = store.maps().detach()  # (B, s, s, tokens)
    heat = (maps * slots[:, None, None, :].to(maps.dtype)).sum(-1)[:, None]
    heat = F.interpolate(heat, size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    heat = heat / heat.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
    return ATTENTION_FLOOR + (1 - ATTENTION_FLOOR) * heat


@torch.no_grad()
def preview_image(model: DiffusionModel, vectors: torch.Tensor, kind: str = "object",
                  steps: int = 10, guidance: float = 7.5, seed: int = 0, template: str | None = None
                  ) -> Image.Image:
    """A quick DDIM sample of the word so far, with classifier-free guidance: of `template`
    (e.g. a sample photo's caption, LearnedWord.preview_caption), else of e.g. "a <word>"."""
    ids, slots = template_ids(model, [template or PREVIEW_TEMPLATES[kind]], len(vectors))
    text = torch.cat([model.encode_text([""]),
                      encode_with_vectors(model, ids, slots, vectors).to(model.dtype)])
    scheduler = model.fresh_scheduler(steps)
    size = int(model.unet.config.sample_size)
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn((1, model.unet.config.in_channels, size, size), generator=generator)
    latents = latents.to(model.device, model.dtype) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        pair = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        uncond, cond = model.unet(pair, t, encoder_hidden_states=text).sample.chunk(2)
        latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
    return model.decode(latents)[0]
