"""Classifier-free-guided DDIM sampling, shared by generation, inversion and editing."""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.model import DiffusionModel

# Called after each step with (step index, latents); may return replaced latents.
StepCallback = Callable[[int, torch.Tensor], torch.Tensor | None]


def timesteps(scheduler) -> list[tuple[torch.Tensor, int]]:
    """A scheduler's timesteps, each on its device (for the UNet) and as an int (for `step`).

    Given a GPU tensor, diffusers' DDIM `step` compares and indexes with it on the host, a
    device synchronisation per step that stops the CPU from queueing ahead; with an int it
    does the same arithmetic without one. The one transfer is here, before any step.
    """
    return list(zip(scheduler.timesteps, scheduler.timesteps.tolist(), strict=True))


def guided_noise(model: DiffusionModel, latents: torch.Tensor, timestep: torch.Tensor,
                 uncond: torch.Tensor, cond: torch.Tensor, guidance: float,
                 unguided: int = 0) -> torch.Tensor:
    """The guided model output for a batch: one UNet call over [uncond; cond].

    `uncond` and `cond` are (batch, tokens, width). With guidance 1 only `cond` is evaluated.
    The first `unguided` items get their conditional output alone, and their unconditional
    evaluation is skipped: for branches whose step is replaced afterwards (direct inversion's
    source branch), whose conditional pass is only needed for its attention.
    """
    dtype = model.dtype
    if guidance == 1.0:
        return model.unet(latents.to(dtype), timestep, cond.to(dtype)).sample.float()
    both = model.unet(torch.cat([latents[unguided:], latents]).to(dtype), timestep,
                      torch.cat([uncond[unguided:], cond]).to(dtype)).sample.float()
    out_uncond, out_cond = both[:latents.shape[0] - unguided], both[latents.shape[0] - unguided:]
    guided = out_uncond + guidance * (out_cond[unguided:] - out_uncond)
    return torch.cat([out_cond[:unguided], guided]) if unguided else guided


@torch.no_grad()
def sample(model: DiffusionModel, latents: torch.Tensor, cond: torch.Tensor,
           uncond: torch.Tensor | list[torch.Tensor], guidance: float, steps: int,
           on_step: StepCallback | None = None, before_step: Callable[[int], None] | None = None,
           unguided: int = 0) -> torch.Tensor:
    """Run DDIM from `latents` (at the first timestep) to clean latents.

    `uncond` is one embedding for every step or a list with one per step (null-text inversion).
    `before_step(i)` lets an attention controller know the step; `on_step(i, latents)` may
    replace the latents after each step (LocalBlend, direct inversion). The first `unguided`
    items are stepped without guidance (see `guided_noise`): only for items `on_step` replaces.
    The UNet batch is [uncond of the guided items; cond of all items], so the conditional half
    is always the last `len(latents)` items.
    """
    scheduler = model.fresh_scheduler(steps)
    latents = latents.float()
    for i, (t, t_host) in enumerate(timesteps(scheduler)):
        if before_step is not None:
            before_step(i)
        step_uncond = uncond[i] if isinstance(uncond, list) else uncond
        if step_uncond.shape[0] != latents.shape[0]:
            step_uncond = step_uncond.expand(latents.shape[0], -1, -1)
        noise = guided_noise(model, latents, t, step_uncond, cond, guidance, unguided)
        latents = scheduler.step(noise, t_host, latents).prev_sample
        if on_step is not None:
            replaced = on_step(i, latents)
            if replaced is not None:
                latents = replaced
    return latents


def initial_noise(model: DiffusionModel, batch: int, seed: int) -> torch.Tensor:
    """Seeded starting latents for text-to-image generation."""
    side = int(model.unet.config.sample_size)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(batch, model.unet.config.in_channels, side, side, generator=generator)
    return noise.to(model.device)


def generate(model: DiffusionModel, prompts: list[str], guidance: float = 7.5, steps: int = 50,
             seed: int = 0, negative_prompt: str = "") -> torch.Tensor:
    """Text-to-image latents for prompts (used by previews, benchmarks and the checker)."""
    cond = model.encode_text(prompts)
    uncond = model.encode_text([negative_prompt])
    latents = initial_noise(model, len(prompts), seed)
    return sample(model, latents, cond, uncond, guidance, steps)
