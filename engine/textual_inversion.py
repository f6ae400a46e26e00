"""Learning a concept from a few photos: textual inversion (Gal et al. 2022).

A new word of n vectors is found by gradient descent on the ordinary denoising loss of the
frozen model, with captions such as "a photo of a <word>". Only the n vectors are trained: they
live in their own fp32 parameter, and a forward hook on the text encoder's token embedding puts
them at the word's positions of each caption. The shared model is never modified (no tokens are
added, no embedding row is written), so other jobs can keep using it while a concept is learned.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from PIL import Image

from engine.concepts import KINDS, Concept, concept_name
from engine.config import ConceptSettings
from engine.errors import (
    ImageError,
    InconsistentImagesError,
    NotEnoughImagesError,
    TooManyImagesError,
)
from engine.images import fit_square, read_image
from engine.model import image_to_tensor

OBJECT_TEMPLATES = (
    "a photo of a {}",
    "a photo of the {}",
    "a picture of a {}",
    "a close-up photo of a {}",
    "a good photo of a {}",
    "a {}",
    # the bundled sticker-world model's caption grammar
    "a big {} in the center",
    "a {} in the center",
    "a picture of the {}",
)
PERSON_TEMPLATES = (
    "a photo of {}",
    "a portrait of {}",
    "a close-up photo of {}",
    "a picture of {}",
    "a good photo of {}",
    "{}",
    "a big {} in the center",
    "a {} in the center",
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


@dataclass
class ConceptProgress:
    """What a progress callback is told after each training step."""

    step: int  # steps done
    total: int  # steps planned (early stop may end sooner)
    loss: float  # smoothed
    preview: Image.Image | None = None  # every settings.preview_every steps


@dataclass
class LearnResult:
    """A learned concept and how the learning went."""

    concept: Concept
    losses: list[float]  # one per step
    steps: int
    stopped_early: bool
    reason: str  # "done", "levelled off" or "cancelled"
    warnings: list[str] = field(default_factory=list)  # for the user, in plain words


def learn_concept(model, images: Sequence[Image.Image], name: str, kind: str = "object",
                  settings: ConceptSettings | None = None, initializer: str | None = None,
                  progress: Callable[[ConceptProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> LearnResult:
    """Learn a word for the thing (or person, or style) shown in `images`.

    Deterministic for a given `settings.seed` on a given device. The model is left unchanged.
    Raises NotEnoughImagesError, TooManyImagesError, ConceptNameError, and with
    `settings.strict` InconsistentImagesError; other doubts about the photos become warnings.
    """
    settings = settings or ConceptSettings()
    name = concept_name(name)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    warnings = check_images(images, settings)
    latents = cache_latents(model, images, settings.augment, settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)  # on the CPU: same draws anywhere
    start, note = initial_vectors(model, settings.vectors, initializer, generator)
    warnings += [note] if note else []
    vectors = torch.nn.Parameter(start.to(model.device))
    optimizer = torch.optim.AdamW([vectors], lr=settings.learning_rate, weight_decay=0.0)
    # A half-precision UNet passes small gradients back through fp16: scale the loss.
    scaler = torch.amp.GradScaler("cuda", enabled=model.device.type == "cuda"
                                  and model.dtype == torch.float16)
    ids, slots = template_ids(model, TEMPLATES[kind], settings.vectors)
    scheduler = DDIMScheduler.from_config(model.scheduler.config)

    losses: list[float] = []
    smoothed, reason = 0.0, "done"
    for step in range(1, settings.steps + 1):
        if should_stop is not None and should_stop():
            reason = "cancelled"
            break
        pick = torch.randint(len(ids), (settings.batch_size,), generator=generator)
        hidden = encode_with_vectors(model, ids[pick], slots[pick], vectors)
        loss = diffusion_loss(model, scheduler, latents, hidden, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
        smoothed = 0.9 * smoothed + 0.1 * losses[-1]
        if progress is not None:
            show = settings.preview_every > 0 and step % settings.preview_every == 0
            preview = (preview_image(model, vectors.detach(), kind, settings.preview_steps,
                                     seed=settings.seed) if show else None)
            progress(ConceptProgress(step, settings.steps, smoothed / (1 - 0.9**step), preview))
        if levelled_off(losses, settings.early_stop_window, settings.early_stop_tolerance):
            reason = "levelled off"
            break

    concept = Concept(name, kind, vectors.detach().float().cpu(), steps=len(losses),
                      base_model=model.source)
    return LearnResult(concept, losses, len(losses), reason != "done", reason, warnings)


def learn_concept_from_files(model, paths: Sequence[str | Path], name: str,
                             kind: str = "object", settings: ConceptSettings | None = None,
                             **kwargs) -> LearnResult:
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
def cache_latents(model, images: Sequence[Image.Image], augment: int, seed: int,
                  batch: int = 8) -> torch.Tensor:
    """VAE latents [N, C, h, w] of every view of every image, encoded once before training."""
    rng = random.Random(seed)
    views = [v for image in images for v in augmented_views(image, augment, model.image_size, rng)]
    pixels = torch.cat([image_to_tensor(view) for view in views])
    latents = [model.vae.encode(chunk.to(model.device, model.dtype)).latent_dist.mean
               for chunk in pixels.split(batch)]
    return torch.cat(latents) * model.vae.config.scaling_factor


def initial_vectors(model, count: int, initializer: str | None,
                    generator: torch.Generator) -> tuple[torch.Tensor, str | None]:
    """Starting vectors [count, d] (fp32, CPU) and a warning if the initializer was unusable.

    Each is the initializer word's embedding (mean over its tokens), else the mean embedding of
    the vocabulary, plus a little noise so that the vectors do not start identical.
    """
    table = model.text_encoder.get_input_embeddings().weight.detach()
    ids = model.tokenizer(initializer, add_special_tokens=False).input_ids if initializer else []
    note = None
    if 1 <= len(ids) <= 3:  # a word, perhaps split in two or three pieces
        base = table[ids].mean(0)
    else:
        base = table.mean(0)
        if initializer:
            note = (f"'{initializer}' is not a word the model knows well; "
                    "starting from an average word instead")
    base = base.float().cpu()
    noise = torch.randn((count, base.numel()), generator=generator)
    return base + 0.01 * base.norm() / base.numel() ** 0.5 * noise, note


def template_ids(model, templates: Sequence[str], count: int) -> tuple[torch.Tensor, torch.Tensor]:
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


def encode_with_vectors(model, ids: torch.Tensor, slots: torch.Tensor,
                        vectors: torch.Tensor) -> torch.Tensor:
    """Text-encoder hidden states (B, L, d) of `ids` whose token embeddings at `slots` are
    `vectors` [n, d] (each row of `slots` has n True entries); differentiable in `vectors`.
    """
    owner = threading.get_ident()

    def substitute(module, inputs, output):
        if threading.get_ident() != owner:  # another job using the shared encoder meanwhile
            return None
        output = output.clone()
        output[slots] = vectors.to(output.dtype).repeat(len(output), 1)
        return output

    handle = model.text_encoder.get_input_embeddings().register_forward_hook(substitute)
    try:
        return model.text_encoder(ids)[0]
    finally:
        handle.remove()


def diffusion_loss(model, scheduler: DDIMScheduler, latents: torch.Tensor, hidden: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Denoising MSE of the frozen UNet for random cached latents, noise and timesteps.

    The target follows the model's prediction type: the noise (SD 1.x), the velocity (SD 2.x
    v-prediction) or the clean latent.
    """
    batch = len(hidden)
    pick = torch.randint(len(latents), (batch,), generator=generator)
    clean = latents[pick.to(latents.device)]
    noise = torch.randn(clean.shape, generator=generator).to(clean.device, clean.dtype)
    steps = torch.randint(scheduler.config.num_train_timesteps, (batch,), generator=generator)
    steps = steps.to(clean.device)
    noisy = scheduler.add_noise(clean, noise, steps)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(clean, noise, steps)
    else:
        target = clean
    prediction = model.unet(noisy, steps, encoder_hidden_states=hidden.to(model.dtype)).sample
    return F.mse_loss(prediction.float(), target.float())


def levelled_off(losses: Sequence[float], window: int, tolerance: float) -> bool:
    """True when the last `window` losses improve on the `window` before by less than
    `tolerance` (relative). Checked once per window, as single-step losses are noisy."""
    if window <= 0 or len(losses) < 2 * window or len(losses) % window:
        return False
    before = sum(losses[-2 * window:-window]) / window
    after = sum(losses[-window:]) / window
    return before - after < tolerance * before


@torch.no_grad()
def preview_image(model, vectors: torch.Tensor, kind: str = "object", steps: int = 10,
                  guidance: float = 7.5, seed: int = 0) -> Image.Image:
    """A quick DDIM sample of the word so far, e.g. of "a <word>", with classifier-free guidance."""
    ids, slots = template_ids(model, [PREVIEW_TEMPLATES[kind]], len(vectors))
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
