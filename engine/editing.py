"""Edit an inverted photo with prompt-to-prompt: one source -> target prompt edit.

An edit confined by LocalBlend can also keep the photo itself outside its mask
(`PromptEdit.keep_outside`): the decoder spreads a latent change a few pixels beyond where it
was made and regenerating the unmasked part only approximates the photo, so there the photo's
own pixels are put back, and what the edit did not touch is exactly what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.attention_control import AttentionStore, controlled_attention, map_resolution
from engine.config import EditSettings
from engine.errors import InversionError, PromptError
from engine.inversion import Inversion
from engine.model import DiffusionModel
from engine.prompt_alignment import align, token_spans
from engine.prompt_to_prompt import LocalBlend, PromptToPrompt, Schedule, grown
from engine.sampling import sample


@dataclass(frozen=True)
class PromptEdit:
    """What to change: the photo's caption, the edited caption, and how to confine the change."""

    source: str
    target: str
    blend_source_words: tuple[str, ...] = ()  # LocalBlend on these source words ...
    blend_target_words: tuple[str, ...] = ()  # ... and these target words
    reweight: dict[str, float] = field(default_factory=dict)  # target word -> attention scale
    user_mask: np.ndarray | None = None  # (h, w) in [0, 1]: edit only here (overrides words)
    # (h, w) in [0, 1]: the words' mask is kept only inside it (all of it, if they miss it)
    region: np.ndarray | None = None
    keep_outside: bool = False  # outside the blend mask the result is the photo, pixel for pixel
    cross_replace: float | None = None  # this edit's settings, where they differ from the defaults
    self_replace: float | None = None
    blend_threshold: float | None = None
    blend_growth: int = 0  # latent pixels the words' blend mask is grown by (not a user's mask)
    self_everywhere: bool = False  # inject self-attention at every layer, not only coarse ones
    # the edited branch starts without the photo's mean tint (after ddim or direct inversion)
    neutral_start: bool = False

    @property
    def blends(self) -> bool:
        return bool(self.blend_source_words or self.blend_target_words
                    or self.user_mask is not None)


# The EditSettings fields a PromptEdit may set for itself.
PER_EDIT_SETTINGS = ("cross_replace", "self_replace", "blend_threshold")


@dataclass
class EditOutput:
    """The edited image, the reconstruction beside it, and the attention that made it."""

    image: Image.Image
    reconstruction: Image.Image
    maps: torch.Tensor  # (2, side, side, tokens): source and target cross-attention
    source_tokens: list[str]
    target_tokens: list[str]
    mask: np.ndarray | None  # the LocalBlend mask at latent resolution, if any
    pixel_mask: np.ndarray | None = None  # (H, W) in [0, 1]: the edit's share of each pixel


def edit(model: DiffusionModel, inversion: Inversion, prompt_edit: PromptEdit,
         settings: EditSettings = EditSettings(),
         progress: Callable[[int, int], None] | None = None) -> EditOutput:
    """Regenerate the inverted photo twice, as it was and as edited, sharing attention."""
    if inversion.model_source != model.source:
        raise InversionError("this inversion was made with another model")
    if inversion.prompt != prompt_edit.source:
        raise PromptError("the edit's source prompt is not the caption the photo was inverted with")
    steps = inversion.settings.steps
    settings = replace(settings, **{name: value for name in PER_EDIT_SETTINGS
                                    if (value := getattr(prompt_edit, name)) is not None})
    source_spans = token_spans(model.tokenizer, prompt_edit.source)
    target_spans = token_spans(model.tokenizer, prompt_edit.target)
    alignment = align(source_spans, target_spans, model.max_tokens)
    reweight = None
    if prompt_edit.reweight:
        reweight = torch.ones(model.max_tokens)
        for word, scale in prompt_edit.reweight.items():
            positions = target_spans.positions(word)
            if not positions:
                raise PromptError(f"'{word}' is not in the edited prompt")
            reweight[positions] = scale
    store = AttentionStore(map_resolution(model.unet), items=slice(-2, None))  # the cond pair
    schedule = Schedule(steps, settings.cross_replace, settings.self_replace,
                        self_max_resolution=(
                            int(model.unet.config.sample_size) if prompt_edit.self_everywhere
                            else max(int(model.unet.config.sample_size) // 4,
                                     store.resolution // 2)))
    controller = PromptToPrompt(alignment, schedule, reweight, store)
    blend = None
    if prompt_edit.blends:
        user_mask = (torch.from_numpy(prompt_edit.user_mask) if prompt_edit.user_mask is not None
                     else None)
        blend = LocalBlend(
            store, [p for w in prompt_edit.blend_source_words for p in source_spans.positions(w)],
            [p for w in prompt_edit.blend_target_words for p in target_spans.positions(w)],
            settings.blend_threshold, round(settings.blend_start * steps), user_mask,
            prompt_edit.blend_growth,
            None if prompt_edit.region is None else torch.from_numpy(prompt_edit.region))
        if user_mask is None and not (blend.source_tokens or blend.target_tokens):
            raise PromptError("none of the words to confine the edit to are in the prompts")

    def before_step(i: int) -> None:
        controller.begin_step(i)
        if progress is not None:
            progress(i, steps)

    cond = model.encode_text([prompt_edit.source, prompt_edit.target]).float()
    start = inversion.noise_latent.expand(2, -1, -1, -1).clone()
    if settings.seed:  # another take: the edited branch starts from a nearby noise
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        noise = torch.randn(start[1].shape, generator=generator).to(start.device)
        start[1] = (1 - settings.variation ** 2) ** 0.5 * start[1] + settings.variation * noise
    if prompt_edit.neutral_start and inversion.empty_unconditional:
        # an unconditional branch fitted to the photo would pull the tint back, and fights a
        # start without it (bundled model, fast inversion: restyles 65% -> 20%)
        start[1] -= start[1].mean(dim=(-2, -1), keepdim=True)
    anchor = inversion.anchor(settings.anchor_edited)

    def after_step(i: int, latents: torch.Tensor) -> torch.Tensor | None:
        if anchor is not None:  # direct inversion: first back onto the trajectory, then blend
            latents = anchor(i, latents)
        blended = blend(i, latents) if blend is not None else None
        return latents if blended is None else blended

    # Direct inversion replaces the source branch's every step, so it needs no guidance: only
    # its conditional pass, for the attention the edit takes from it.
    unguided = 1 if anchor is not None and not anchor.all_items else 0
    with controlled_attention(model.unet, controller):
        latents = sample(model, start, cond, inversion.uncond, inversion.settings.guidance, steps,
                         on_step=after_step, before_step=before_step, unguided=unguided)
    reconstruction, image = model.decode(latents)
    mask = blend.mask.cpu() if blend is not None and blend.mask is not None else None
    pixel_mask = None
    if prompt_edit.keep_outside and mask is not None:
        pixel_mask = pixel_share(mask, image.size[::-1])
        image = composite(inversion.image.convert("RGB").resize(image.size), image, pixel_mask)
    return EditOutput(image, reconstruction, store.maps().cpu(),
                      model.tokens(prompt_edit.source), model.tokens(prompt_edit.target),
                      None if mask is None else mask.numpy(), pixel_mask)


def pixel_share(mask: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A latent-resolution binary mask as each pixel's share (H, W) in [0, 1] of the edit.

    Grown by one latent pixel first, as the decoder spreads a latent's change about that far,
    then upsampled bilinearly so the seam between edit and photo is soft, not a staircase.
    """
    share = grown(mask).float()[None, None]
    return F.interpolate(share, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def composite(photo: Image.Image, edited: Image.Image, share: np.ndarray) -> Image.Image:
    """`edited` where `share` is 1, `photo` where it is 0, mixed in between."""
    a = share[..., None]
    mixed = (np.asarray(edited, np.float32) * a + np.asarray(photo, np.float32) * (1 - a))
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))
