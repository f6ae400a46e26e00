"""Inverting a photo into the model: DDIM, null-text (Mokady et al.), negative-prompt and direct
inversion (Ju et al., PnP-Inversion).

All four start from the DDIM inversion trajectory of the photo under its caption. They differ in
how guided sampling is kept on it:
- "ddim": the empty prompt's embedding as the unconditional one (guided sampling drifts away);
- "null-text": per-step embeddings optimised so guided sampling retraces the trajectory;
- "fast" (negative-prompt inversion): the caption's own embedding, no optimisation;
- "direct": the empty prompt's embedding, and the whole trajectory is kept: after every sampling
  step the source branch is put back on it by adding the difference between the stored latent
  and the one the step produced (`TrajectoryAnchor`). Exact at the cost of DDIM inversion.
One `Inversion` serves any number of edits of the same photo, and can be saved and reloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMInverseScheduler
from PIL import Image
from safetensors.torch import load_file, save_file

from engine.attention_control import AttentionStore, controlled_attention, map_resolution
from engine.config import INVERSION_MODES, InversionSettings
from engine.errors import InversionError
from engine.images import Framing, fit
from engine.model import DiffusionModel
from engine.sampling import guided_noise, sample, timesteps

MODES = INVERSION_MODES
# Modes whose guidance pushes off the empty prompt rather than an unconditional branch fitted
# to the photo (null-text's embeddings, fast's caption).
EMPTY_UNCONDITIONAL_MODES = ("ddim", "direct")
# (step index, total steps, loss of the step or None)
InversionProgress = Callable[[int, int, float | None], None]


@dataclass
class Inversion:
    """What editing needs to regenerate a photo: its noised latent and per-step null embeddings."""

    mode: str
    prompt: str
    noise_latent: torch.Tensor  # (1, C, h, w) at the first sampling timestep
    uncond: list[torch.Tensor]  # one (1, tokens, width) embedding per sampling step
    settings: InversionSettings
    model_source: str
    image: Image.Image  # the photo as the model saw it (square, model size)
    # direct mode: (steps + 1, C, h, w) DDIM-inversion latents, clean (0) to noisiest (steps)
    trajectory: torch.Tensor | None = None
    # (side, side, tokens) the prompt's cross-attention over the photo along the inversion, on
    # the CPU: where its words are, and what they leave free (None: an older save without it)
    maps: torch.Tensor | None = None
    framing: Framing = Framing.CENTRE  # how the photo was put into the model's square

    @property
    def empty_unconditional(self) -> bool:
        """Whether guidance pushes off the empty prompt (ddim, direct), rather than off an
        unconditional branch fitted to this photo (null-text's embeddings, fast's caption),
        which pulls a sample back onto the photo's own trajectory, its colours included."""
        return self.mode in EMPTY_UNCONDITIONAL_MODES

    def save(self, path: Path) -> None:
        """Store as safetensors (tensors) with the rest as metadata; the photo beside it."""
        tensors = {"noise_latent": self.noise_latent.contiguous().cpu(),
                   "uncond": torch.cat(self.uncond).contiguous().cpu()}
        if self.trajectory is not None:
            tensors["trajectory"] = self.trajectory.contiguous().cpu()
        if self.maps is not None:
            tensors["maps"] = self.maps.contiguous().cpu()
        meta = {"mode": self.mode, "prompt": self.prompt, "model_source": self.model_source,
                "settings": json.dumps(asdict(self.settings)), "framing": str(self.framing)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, tmp, metadata=meta)
        self.image.save(path.with_suffix(".png"))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, model: DiffusionModel) -> Inversion:
        """Reload a saved inversion for `model` (refused if it was made with another model)."""
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                meta = handle.metadata()
            tensors = load_file(str(path))
            image = Image.open(path.with_suffix(".png")).convert("RGB")
        except (OSError, ValueError) as exc:
            raise InversionError(f"cannot read the saved inversion {path.name}: {exc}") from exc
        if meta["model_source"] != model.source:
            raise InversionError("this inversion was made with another model")
        uncond = [u[None].to(model.device) for u in tensors["uncond"]]
        trajectory = tensors.get("trajectory")
        if meta["mode"] == "direct" and trajectory is None:
            raise InversionError(f"the saved direct inversion {path.name} has no trajectory")
        try:  # saves older than framing were all of the centre square
            framing = Framing(meta.get("framing", Framing.CENTRE))
        except ValueError:
            raise InversionError(f"the saved inversion {path.name} names an unknown framing "
                                 f"{meta['framing']!r}") from None
        return cls(meta["mode"], meta["prompt"], tensors["noise_latent"].to(model.device), uncond,
                   InversionSettings(**json.loads(meta["settings"])), meta["model_source"], image,
                   None if trajectory is None else trajectory.to(model.device),
                   tensors.get("maps"), framing)

    def anchor(self, all_items: bool = False) -> TrajectoryAnchor | None:
        """What keeps sampling on this photo's trajectory (direct mode), else None."""
        return None if self.trajectory is None else TrajectoryAnchor(self.trajectory, all_items)


class TrajectoryAnchor:
    """Direct inversion's correction, a sampling step callback (engine.sampling.StepCallback).

    After sampling step i the source branch (batch item 0) should be at the trajectory's latent
    of that noise level. The difference between that stored latent and the latent the guided
    step produced is added back to item 0, which puts it exactly on the trajectory, so the
    source branch never accumulates guidance's error and its attention, which prompt-to-prompt
    injects into the edit, stays the photo's. With `all_items` the same difference is added to
    every other item as well: a step's error is mostly the guidance's drift away from the
    photo, which the edited branch shares wherever the edit does not reach.
    """

    def __init__(self, trajectory: torch.Tensor, all_items: bool = False):
        self.trajectory = trajectory
        self.all_items = all_items

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        wanted = self.trajectory[-2 - step].to(latents.device, latents.dtype)
        difference = wanted - latents[0]
        if self.all_items:
            return latents + difference
        corrected = latents.clone()
        corrected[0] = wanted
        return corrected


@torch.no_grad()
def ddim_trajectory(model: DiffusionModel, latent: torch.Tensor, cond: torch.Tensor,
                    steps: int) -> list[torch.Tensor]:
    """Latents from the clean one (index 0) to the noisiest (index `steps`), unguided."""
    inverse = DDIMInverseScheduler.from_config(model.scheduler.config)
    inverse.set_timesteps(steps, device=model.device)
    trajectory = [latent.float()]
    for t, t_host in timesteps(inverse):
        noise = guided_noise(model, trajectory[-1], t, cond, cond, 1.0)
        trajectory.append(inverse.step(noise, t_host, trajectory[-1]).prev_sample)
    return trajectory


def invert(model: DiffusionModel, image: Image.Image, prompt: str, mode: str = "null-text",
           settings: InversionSettings = InversionSettings(),
           progress: InversionProgress | None = None,
           should_stop: Callable[[], bool] | None = None,
           framing: Framing = Framing.CENTRE) -> Inversion:
    """Invert a photo under its caption with one of MODES, put into the model's square as
    `framing` says (engine/images.py)."""
    if mode not in MODES:
        raise InversionError(f"unknown inversion mode {mode!r}; use one of {', '.join(MODES)}")
    image = fit(image, model.image_size, framing)
    cond = model.encode_text([prompt]).float()
    store = AttentionStore(map_resolution(model.unet))
    with controlled_attention(model.unet, store):
        trajectory = ddim_trajectory(model, model.encode_image(image), cond, settings.steps)
    kept = None
    if mode in EMPTY_UNCONDITIONAL_MODES:
        uncond = [model.encode_text([""]).float()] * settings.steps
        if mode == "direct":
            kept = torch.cat(trajectory)
    elif mode == "fast":
        uncond = [cond] * settings.steps
    else:
        uncond = optimise_null_text(model, trajectory, cond, settings, progress, should_stop)
    if progress is not None and mode != "null-text":
        progress(settings.steps, settings.steps, None)
    return Inversion(mode, prompt, trajectory[-1], uncond, settings, model.source, image, kept,
                     store.maps()[0].cpu(), Framing(framing))


def optimise_null_text(model: DiffusionModel, trajectory: list[torch.Tensor], cond: torch.Tensor,
                       settings: InversionSettings, progress: InversionProgress | None = None,
                       should_stop: Callable[[], bool] | None = None) -> list[torch.Tensor]:
    """Per-step unconditional embeddings that make guided DDIM retrace `trajectory`.

    Per timestep: the conditional prediction once; then, at most `inner_steps` times, the
    unconditional prediction, the guided step, its distance to the trajectory and, unless that
    distance is already under the step's threshold (`early_stop_threshold`), an Adam step on
    the embedding. The guided step of the last evaluation is the next starting latent, so the
    embedding the search ends with is never evaluated twice.
    """
    scheduler = model.fresh_scheduler(settings.steps)
    null = model.encode_text([""]).float()
    latent = trajectory[-1]
    result = []
    total = len(scheduler.timesteps)
    for i, (t, t_host) in enumerate(timesteps(scheduler)):
        if should_stop is not None and should_stop():
            raise InterruptedError("inversion cancelled")
        target = trajectory[-2 - i]
        threshold = early_stop_threshold(settings, i)
        with torch.no_grad():
            out_cond = model.unet(latent.to(model.dtype), t, cond.to(model.dtype)).sample.float()
        null = null.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([null], lr=settings.learning_rate * (1 - i / (2 * total)))
        for inner in range(settings.inner_steps + 1):
            last = inner == settings.inner_steps
            with torch.set_grad_enabled(not last):
                out_uncond = model.unet(latent.to(model.dtype), t,
                                        null.to(model.dtype)).sample.float()
                guided = out_uncond + settings.guidance * (out_cond - out_uncond)
                stepped = scheduler.step(guided, t_host, latent).prev_sample
                loss = F.mse_loss(stepped, target)
            loss_value = loss.item()  # the one host sync per evaluation: the stop test needs it
            if last or loss_value < threshold:
                break
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        result.append(null.detach())
        latent = stepped.detach()
        if progress is not None:
            progress(i + 1, total, loss_value)
    return result


def early_stop_threshold(settings: InversionSettings, step: int) -> float:
    """The distance under which step `step`'s search stops: it grows along the trajectory.

    Later (less noisy) steps start closer and matter less to the final image, so, as in the
    published method, they accept a larger error: `early_stop` at the first step, plus
    `early_stop_growth` spread linearly over the trajectory.
    """
    return settings.early_stop + settings.early_stop_growth * step / settings.steps


def reconstruct(model: DiffusionModel, inversion: Inversion) -> Image.Image:
    """Regenerate the photo from an inversion (no edit)."""
    if inversion.trajectory is not None:  # direct: sampling ends exactly where the trajectory began
        return model.decode(inversion.trajectory[:1])[0]
    cond = model.encode_text([inversion.prompt]).float()
    latents = sample(model, inversion.noise_latent, cond, inversion.uncond,
                     inversion.settings.guidance, inversion.settings.steps)
    return model.decode(latents)[0]
