"""Train the bundled sticker-world model from scratch, resumably, on CPU or GPU.

    python -m world.train --minutes 120          # runs until done or out of time
    python -m world.train --export-only          # re-export the folder from the checkpoint

Stages, each resumed from `<run>/state.pt`:
1. VAE on random 32x32 crops of rendered scenes (convolutional, so it runs on 64x64 after).
2. Latents of two pools of scenes are encoded once (one-object and up to three objects).
3. Text encoder + UNet on those latents: a one-object curriculum first, then mixed scenes,
   caption dropout for classifier-free guidance, min-SNR loss weights, EMA of weights, and a
   small grounding loss that moves each object word's cross-attention into the object's mask
   (`world.grounding`), more weight on the denoising error inside objects
   (`object_loss_weight`, where the fine features are; `ear_loss_weight` for the creatures'
   ears, the feature least drawn right, with `named_ears_share` of the batches lone eared
   creatures whose captions name their ears, and `named_patterns_share` lone patterned shapes
   whose captions name their pattern, `people_share` of the pools lone faces and group
   photos, `named_faces_share` of the batches lone faces with one identity part named) and
   noise whose mean varies
   (`noise_offset`, so that words can set a picture's overall tint); the text encoder is
   frozen for the last stretch so textual inversion meets a fixed encoder, as it does on SD;
   a warm start whose vocabulary grew trains only the new words' embedding rows then.
The EMA weights are exported as a diffusers StableDiffusionPipeline folder; each periodic
export is also kept beside it (`keep_exports`), so a run's late exports can be averaged
(`world.average`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.training_utils import EMAModel

from engine.attention_control import controlled_attention, cross_attention_resolutions
from world import architecture
from world.captioner import write_captioner_spec
from world.grounding import AttentionRecorder, grounding_loss, scene_cells, word_masks
from world.render import ear_mask, render
from world.scene import (
    FACE_ONLY,
    FINE_HUES,
    MAX_FINE_FEATURES,
    Scene,
    grounded_caption,
    hue_name,
    nameable_features,
    random_group,
    random_scene,
)

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "engine" / "models" / "sticker-world"


@dataclass
class TrainConfig:
    run_dir: str = "runs/sticker-world"
    export_dir: str = str(BUNDLED_MODEL_DIR)
    warm_start_dir: str = ""  # without a checkpoint, continue from this export (default export_dir)
    seed: int = 0
    vae_steps: int = 5000
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    single_pool: int = 20000
    multi_pool: int = 60000
    unet_steps: int = 60000
    single_object_steps: int = 6000  # curriculum: one object per scene until here
    freeze_text_encoder_at: int = 45000
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 500  # steps of linear warm-up, from step 0 and again after a warm start
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    caption_dropout: float = 0.1
    grounding_weight: float = 0.01  # 0 trains on captions alone
    grounding_min_side: int = 8  # ground words at cross-attention layers this fine or finer
    object_loss_weight: float = 5.0  # the denoising error inside objects counts this many times
    ear_loss_weight: float = 1.0  # ...and where creatures' ears are, at least this many (1: off)
    named_ears_share: float = 0.0  # share of batches of lone eared creatures, their ears named
    named_patterns_share: float = 0.0  # ...and of lone patterned shapes, their pattern named
    named_faces_share: float = 0.0  # ...and of lone faces, one identity part named
    people_share: float = 0.0  # share of the pools that are lone faces (one-object pool) and
    # group photos of 2-3 faces (the other pool): where faces learn their identity parts
    noise_offset: float = 0.1  # std of a per-channel constant added to the training noise
    noise_pyramid: float = 0.0  # weight per halving of coarser noise added to it (0: off)
    bf16: bool = True  # bfloat16 autocast of the forward passes, fp32 weights: ~1.3x on CPU
    checkpoint_minutes: float = 5.0
    export_every: int = 5000
    keep_exports: bool = True  # also keep each periodic export at <export_dir>-<step>, to average
    render_workers: int = 0  # processes rendering the pools (0: one per CPU core, at most 16)


def moving_average(module: torch.nn.Module, decay: float) -> EMAModel:
    """The exponential moving average of `module`'s weights that exports are made of. Updated
    with one multi-tensor operation per step instead of a few per weight: the UNet has 326
    weights, so a per-weight loop costs about a thousand kernel launches a step on a GPU (and
    10 ms against 6 on one CPU thread); the averages are the same to the bit."""
    return EMAModel(module.parameters(), decay=decay, foreach=True)


def unet_learning_rate(cfg: TrainConfig, step: int, warmed_from: int = 0) -> float:
    """The UNet's learning rate at `step`: a linear warm-up over `cfg.warmup` steps from
    `warmed_from`, constant, then a linear decay over the recipe's last 20% (to 5%).

    `warmed_from` is the step the optimiser's state started at: 0, or the step a warm start
    continued from. Fresh AdamW moments make the first updates about `lr` in size for every
    weight, whatever its gradient, which knocks a trained model off its minimum; the model
    card has what this cost the bundled model and what the warm-up saves.
    """
    lr = cfg.lr * min(1.0, (step - warmed_from + 1) / max(1, cfg.warmup))
    if step > 0.8 * cfg.unet_steps:
        lr *= max(0.05, (cfg.unet_steps - step) / (0.2 * cfg.unet_steps))
    return lr


def run_config(run_dir: str, export_dir: str | None = None, warm_start_dir: str = "",
               overrides: dict[str, str] | None = None) -> TrainConfig:
    """The recipe for a run: the one its checkpoint was saved with, when there is one (so a
    resume needs no flags), else the defaults; ``overrides`` (field -> text) go on top."""
    fields: dict[str, object] = {}
    state = Path(run_dir) / "state.pt"
    if state.exists():
        fields = dict(torch.load(state, map_location="cpu", weights_only=False)["config"])
    fields.update(run_dir=run_dir, warm_start_dir=warm_start_dir)
    if export_dir is not None:
        fields["export_dir"] = export_dir
    for key, text in (overrides or {}).items():
        if key not in TrainConfig.__dataclass_fields__:
            raise ValueError(f"TrainConfig has no field {key!r}")
        kind = type(getattr(TrainConfig, key))
        fields[key] = text.lower() in ("1", "true", "yes") if kind is bool else kind(text)
    known = {k: v for k, v in fields.items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**known)


def log(run_dir: Path, message: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(run_dir / "log.txt", "a") as f:
        f.write(line + "\n")


def to_tensor(images: list) -> torch.Tensor:
    """PIL images -> float tensor in [-1, 1], NCHW."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def render_part(scenes: list, sides: tuple[int, ...]) -> tuple[list, dict[int, np.ndarray]]:
    """Render some scenes: their images and, per grounding side, their object mask grids
    stacked as one (scenes, positions, side*side) boolean array.

    Arrays, not tensors: a tensor handed back from a worker process travels as shared memory
    that holds one file descriptor open per tensor, so a pool of 18,000 scenes at two grid sides
    ran out of descriptors; an array is copied through the pipe."""
    renderings = [render(scene) for scene in scenes]
    grids: dict[int, list] = {side: [] for side in sides}
    for rendering in renderings:
        for side, grid in scene_cells(rendering.masks, sides).items():
            grids[side].append(grid)
    return [r.image for r in renderings], {side: torch.stack(grid).numpy()
                                           for side, grid in grids.items()}


def on_workers(function: Callable, parts: list[list], workers: int, *args) -> Iterator:
    """`function(part, *args)` of each part, in order, on `workers` processes: drawing scenes
    is pure Python and would otherwise keep a GPU waiting for minutes while a pool is built."""
    if workers <= 1:
        yield from (function(part, *args) for part in parts)
        return
    # spawn, not fork: a forked child inherits the parent's OpenMP state and can hang in torch.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(function, parts, *([arg] * len(parts) for arg in args))


POOL_PART = 256  # scenes a worker process draws at a time (and the VAE encodes at once)


def pool_parts(scenes: list) -> list[list]:
    """A pool's scenes cut into the parts its worker processes draw."""
    return [scenes[i:i + POOL_PART] for i in range(0, len(scenes), POOL_PART)]


def rendered_parts(parts: list[list], sides: tuple[int, ...], workers: int
                   ) -> Iterator[tuple[list, dict[int, np.ndarray]]]:
    """`render_part` of each part, in order, on `workers` processes."""
    return on_workers(render_part, parts, workers, sides)


def offset_noise(latents: torch.Tensor, offset: float, pyramid: float = 0.0) -> torch.Tensor:
    """Gaussian training noise plus, per sample and channel, a constant of std `offset`, and
    with `pyramid` also Gaussian noise drawn at every coarser halving of the side and upsampled,
    weighted `pyramid` ** level, each sample's sum scaled back to unit variance.

    With SD's schedule a latent keeps some of its mean colour even at the last timestep, so a
    model trained on plain noise reads a picture's overall tint from the noise it is given and
    never learns to set it from the words: "in sepia style" came out untinted (0 of 10). Noise
    whose mean varies makes the overall tint the model's to choose, as in "offset noise"
    fine-tuning of Stable Diffusion. DDIM inversion of a photo leaves more than its mean in the
    noise it ends at: a bright cloud or snow stays a bright patch. Noise with such coarse
    patches of its own ("pyramid" or multi-resolution noise) is meant to make them the model's
    to draw over, as an edit must where it adds a thing on a cloud; a CPU continuation with it
    did not (the model card: "Noise with coarse patches of its own")."""
    noise = torch.randn_like(latents)
    if pyramid:
        side, level = latents.shape[-1], 1
        while side >> level >= 1:
            coarse = torch.randn(*latents.shape[:2], side >> level, side >> level,
                                 device=latents.device, dtype=latents.dtype)
            noise = noise + pyramid ** level * F.interpolate(coarse, size=latents.shape[-2:],
                                                             mode="bilinear")
            level += 1
        noise = noise / noise.std(dim=(1, 2, 3), keepdim=True)
    if offset:
        noise = noise + offset * torch.randn(*latents.shape[:2], 1, 1, device=latents.device,
                                             dtype=latents.dtype)
    return noise


EAR_TOUCH = 0.15  # a latent pixel holds an ear when one of its image pixels is this much ear


def ear_cells(scenes: list, side: int) -> torch.Tensor:
    """Per scene, the (side, side) latent pixels an ear of its creatures touches (`ear_mask`):
    an ear is a few image pixels, so any pixel of a latent pixel's patch counts."""
    grids = []
    for scene in scenes:
        mask = torch.from_numpy(ear_mask(scene))[None, None]
        grids.append(F.max_pool2d(mask, mask.shape[-1] // side)[0, 0] > EAR_TOUCH)
    return torch.stack(grids)


def ear_part(scenes: list, side: int) -> np.ndarray:
    """`ear_cells` of some scenes as an array, to travel back from a worker process."""
    return ear_cells(scenes, side).numpy()


def feature_named(scene: Scene, feature: str, rng: random.Random
                  ) -> dict[str, tuple[str, ...]]:
    """Fine features to name for a one-object scene's object: `feature` always, and a few
    more of its features at random (never all five of a creature, as `scene.pick_fine`)."""
    thing = scene.objects[0]
    others = [name for name in nameable_features(thing) if name != feature]
    more = rng.randint(0, min(MAX_FINE_FEATURES - 1, len(others)))
    chosen = {feature, *rng.sample(others, more)}
    order = nameable_features(thing)
    return {thing.position: tuple(name for name in order if name in chosen)}


def object_weighted_error(error: torch.Tensor, cells: torch.Tensor, weight: float,
                          ears: torch.Tensor | None = None, ear_weight: float = 1.0
                          ) -> torch.Tensor:
    """Per-sample mean of a (B, C, s, s) denoising error in which latent pixels inside any
    object count `weight` times: fine features (eyes, mouths, stripes) cover a few of the 256
    latent pixels of a scene, so a plain mean lets the sky and the grass outvote them.
    `cells` is the (B, positions, s*s) object-mask grid of `grounding.scene_cells`; `ears`, a
    (B, s, s) grid of `ear_cells`, whose pixels count at least `ear_weight` times."""
    side = error.shape[-1]
    inside = cells.any(dim=1).view(-1, 1, side, side).to(error.dtype)
    weights = 1.0 + (weight - 1.0) * inside
    if ears is not None:
        weights = torch.maximum(weights, ear_weight * ears.view(-1, 1, side, side).to(error.dtype))
    return (error * weights).sum(dim=(1, 2, 3)) / (weights.sum(dim=(1, 2, 3)) * error.shape[1])


class Batch(NamedTuple):
    """One UNet step's input: latents, captions (some dropped), the scenes' object-mask grids
    per side, which words name which object, and the ears' latent grid (None when unweighted)."""

    latents: torch.Tensor
    texts: list[str]
    cells: dict[int, torch.Tensor]
    groundings: list[dict]
    ears: torch.Tensor | None


class Trainer:
    """Holds the models, optimisers and progress; `run` advances whatever stage is current."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        shares = cfg.named_ears_share + cfg.named_patterns_share + cfg.named_faces_share
        if shares > 1:
            raise ValueError(f"named_ears_share ({cfg.named_ears_share}), "
                             f"named_patterns_share ({cfg.named_patterns_share}) and "
                             f"named_faces_share ({cfg.named_faces_share}) are shares of the "
                             "batches: together at most 1")
        self.cfg, self.device = cfg, device
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.tokenizer = architecture.build_tokenizer(self.run_dir / "tokenizer")
        self.vae = architecture.build_vae().to(device)
        self.text_encoder = architecture.build_text_encoder(self.tokenizer).to(device)
        self.unet = architecture.build_unet().to(device)
        self.noise = DDPMScheduler.from_config(architecture.build_scheduler().config)
        self.vae_opt = torch.optim.AdamW(self.vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        self.opt = torch.optim.AdamW(
            list(self.unet.parameters()) + list(self.text_encoder.parameters()),
            lr=cfg.lr, weight_decay=0.01)
        self.ema_unet = moving_average(self.unet, cfg.ema_decay)
        self.ema_text = moving_average(self.text_encoder, cfg.ema_decay)
        self.vae_step = 0
        self.unet_step = 0
        self.warmed_from = 0  # the UNet step this run's optimiser state started at
        self.new_words_from: int | None = None  # first new embedding row of a grown vocabulary
        self.known_rows: torch.Tensor | None = None  # the rows before it, kept as they were
        self.scaling_factor = 1.0
        self.rng = random.Random(cfg.seed)
        self.pools: dict[str, tuple[list, torch.Tensor]] = {}
        self.pool_cells: dict[str, dict[int, torch.Tensor]] = {}  # name -> side -> masks
        self.pool_ears: dict[str, torch.Tensor] = {}  # name -> ears' latent grids (if weighted)
        self._lone_with: dict[str, list[int]] = {}  # feature -> one-object scenes that have it
        self.grounding_sides = tuple(  # cross-attention resolutions the grounding loss reads
            side for side in cross_attention_resolutions(self.unet)
            if side >= cfg.grounding_min_side) if cfg.grounding_weight > 0 else ()
        self.latent_side = int(self.unet.config.sample_size)
        extra = {self.latent_side} if self.weights_pixels() else set()
        self.cell_sides = tuple(sorted(set(self.grounding_sides) | extra, reverse=True))
        self.load()

    def weights_pixels(self) -> bool:
        """Whether the denoising error weighs some latent pixels more (objects or ears)."""
        return self.cfg.object_loss_weight != 1.0 or self.cfg.ear_loss_weight != 1.0

    # -- persistence ---------------------------------------------------------------------------
    def state_path(self) -> Path:
        return self.run_dir / "state.pt"

    def save(self) -> None:
        state = {
            "config": asdict(self.cfg), "vae_step": self.vae_step, "unet_step": self.unet_step,
            "warmed_from": self.warmed_from, "scaling_factor": self.scaling_factor,
            "new_words_from": self.new_words_from, "vae": self.vae.state_dict(),
            "vae_opt": self.vae_opt.state_dict(), "unet": self.unet.state_dict(),
            "text_encoder": self.text_encoder.state_dict(), "opt": self.opt.state_dict(),
            "ema_unet": self.ema_unet.state_dict(), "ema_text": self.ema_text.state_dict(),
            "rng": self.rng.getstate(), "torch_rng": torch.get_rng_state(),
        }
        tmp = self.state_path().with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path())

    def load(self) -> None:
        if not self.state_path().exists():
            self.warm_start(Path(self.cfg.warm_start_dir or self.cfg.export_dir))
            return
        state = torch.load(self.state_path(), map_location=self.device, weights_only=False)
        self.vae_step, self.unet_step = state["vae_step"], state["unet_step"]
        self.warmed_from = state.get("warmed_from", 0)  # older checkpoints: warmed from 0
        self.scaling_factor = state["scaling_factor"]
        self.vae.load_state_dict(state["vae"])
        self.vae_opt.load_state_dict(state["vae_opt"])
        self.unet.load_state_dict(state["unet"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        self.opt.load_state_dict(state["opt"])
        self.ema_unet.load_state_dict(state["ema_unet"])
        self.ema_text.load_state_dict(state["ema_text"])
        if state.get("new_words_from") is not None:
            self.train_new_words(state["new_words_from"])
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log(self.run_dir, f"resumed: vae step {self.vae_step}, unet step {self.unet_step}")

    def warm_start(self, folder: Path) -> None:
        """Without a checkpoint, continue from an exported model (its EMA weights; fresh
        optimiser state), so a milestone committed to the repository can be trained further."""
        info = folder / "training.json"
        if not info.exists():
            return
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        steps = json.loads(info.read_text())
        self.vae.load_state_dict(AutoencoderKL.from_pretrained(folder / "vae").state_dict())
        self.unet.load_state_dict(
            UNet2DConditionModel.from_pretrained(folder / "unet").state_dict())
        self.load_text_encoder(CLIPTextModel.from_pretrained(folder / "text_encoder"))
        self.ema_unet = moving_average(self.unet, self.cfg.ema_decay)
        self.ema_text = moving_average(self.text_encoder, self.cfg.ema_decay)
        self.vae_step, self.unet_step = steps["vae_steps"], steps["unet_steps"]
        self.warmed_from = self.unet_step  # fresh optimiser state: warm up again
        self.scaling_factor = float(json.loads((folder / "vae" / "config.json").read_text())[
            "scaling_factor"])
        if self.text_encoder_frozen():
            self.text_encoder.requires_grad_(False)
            if self.new_words_from is not None:
                self.train_new_words(self.new_words_from)
        log(self.run_dir, f"warm start from {folder}: vae step {self.vae_step}, "
                          f"unet step {self.unet_step}")

    def load_text_encoder(self, exported) -> None:
        """Load an exported text encoder whose vocabulary may be a prefix of ours (a model
        trained before the fine-feature words existed): the known rows are copied, each new
        word starts from its nearest coarse word (a fine hue from its rough colour) or from
        the mean row, so training continues instead of restarting."""
        state = exported.state_dict()
        key = next(k for k in state if k.endswith("token_embedding.weight"))
        old = state[key]
        ours = self.text_encoder.state_dict()[key]
        if old.shape[0] < ours.shape[0]:
            grown = old.mean(0, keepdim=True).repeat(ours.shape[0], 1)
            grown[: old.shape[0]] = old
            vocab = self.tokenizer.get_vocab()
            for start, word in FINE_HUES:
                row, source = vocab.get(word + "</w>"), vocab.get(hue_name(start) + "</w>")
                if (row is not None and row >= old.shape[0] and source is not None
                        and source < old.shape[0]):
                    grown[row] = old[source]
            state[key] = grown
            self.new_words_from = old.shape[0]
            log(self.run_dir, f"text encoder grown from {old.shape[0]} to {ours.shape[0]} tokens")
        self.text_encoder.load_state_dict(state)

    def token_embedding(self) -> torch.nn.Parameter:
        return self.text_encoder.get_input_embeddings().weight

    def train_new_words(self, first_row: int) -> None:
        """With the text encoder frozen, still learn the embedding rows of words added by a
        warm start (from `first_row` on), the way textual inversion learns a word: every
        other weight of the encoder, and every known word's row, stays as it was."""
        self.new_words_from = first_row
        self.text_encoder.requires_grad_(False)
        weight = self.token_embedding()
        weight.requires_grad_(True)
        self.known_rows = weight.detach()[:first_row].clone()
        log(self.run_dir, f"training the embedding rows of new words {first_row}.."
                          f"{weight.shape[0] - 1} only")

    def keep_known_rows(self) -> None:
        """Undo the optimiser's step (weight decay included) on the known words' rows."""
        if self.known_rows is not None:
            with torch.no_grad():
                self.token_embedding()[: len(self.known_rows)] = self.known_rows

    # -- stage 1: VAE --------------------------------------------------------------------------
    def vae_batch(self) -> torch.Tensor:
        images = []
        for _ in range(self.cfg.vae_batch):
            image = render(random_scene(self.rng)).image
            x, y = self.rng.randrange(0, 33, 4), self.rng.randrange(0, 33, 4)
            images.append(image.crop((x, y, x + 32, y + 32)))
        return to_tensor(images).to(self.device)

    def train_vae_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = cfg.vae_lr * 0.5 * (1 + math.cos(math.pi * self.vae_step / cfg.vae_steps))
        for group in self.vae_opt.param_groups:
            group["lr"] = lr
        x = self.vae_batch()
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        loss = (F.l1_loss(recon, x) + F.mse_loss(recon, x)
                + cfg.vae_kl_weight * posterior.kl().mean())
        self.vae_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 1.0)
        self.vae_opt.step()
        self.vae_step += 1
        return {"loss": loss.item()}

    # -- stage 2: latent pools -----------------------------------------------------------------
    def pool_scenes(self, name: str) -> list:
        count = self.cfg.single_pool if name == "single" else self.cfg.multi_pool
        rng = random.Random(f"{self.cfg.seed}-{name}")
        max_objects = 1 if name == "single" else 3
        people = random.Random(f"{self.cfg.seed}-{name}-people")
        return [self.people_scene(people, name)
                if self.cfg.people_share and people.random() < self.cfg.people_share
                else random_scene(rng, max_objects=max_objects,
                                  identities=self.cfg.people_share > 0)
                for _ in range(count)]

    @staticmethod
    def people_scene(rng: random.Random, pool: str) -> Scene:
        """A lone face (the one-object pool) or a group photo (the other pool)."""
        if pool == "multi":
            return random_group(rng)
        scene = random_scene(rng, max_objects=1, identities=True)
        while scene.objects[0].kind != "face":
            scene = random_scene(rng, max_objects=1, identities=True)
        return scene

    @torch.no_grad()
    def build_pool(self, name: str) -> None:
        """Encode a pool of scenes once and keep their object masks at the grounding
        resolutions (both cached on disk), so UNet steps never render or run the VAE."""
        scenes = self.pool_scenes(name)
        path = self.run_dir / f"latents-{name}.pt"
        cells_path = self.run_dir / f"cells-{name}.pt"
        if path.exists() and cells_path.exists():
            latents = torch.load(path, map_location="cpu")
            cells = torch.load(cells_path, map_location="cpu")
            missing = set(self.cell_sides) - set(cells)
            if missing:
                raise ValueError(f"{cells_path} has no object masks at side(s) {sorted(missing)}; "
                                 "delete the cached pool to render it again")
            if len(latents) != len(scenes):
                raise ValueError(
                    f"{path} holds {len(latents)} scenes but the recipe asks for {len(scenes)} "
                    f"({name}_pool); delete the cached pool or set {name}_pool={len(latents)}")
        else:
            workers = self.render_workers()
            log(self.run_dir, f"rendering and encoding {len(scenes)} scenes for the {name} pool "
                              f"({workers} rendering processes)")
            chunks, grids = [], {side: [] for side in self.cell_sides}
            parts = pool_parts(scenes)
            for images, part_grids in rendered_parts(parts, self.cell_sides, workers):
                chunks.append(self.vae.encode(to_tensor(images).to(self.device))
                              .latent_dist.mean.cpu().half())
                for side, grid in part_grids.items():
                    grids[side].append(torch.from_numpy(grid))
            latents = torch.cat(chunks)
            cells = {side: torch.cat(grid) for side, grid in grids.items()}
            torch.save(latents, path)
            torch.save(cells, cells_path)
        self.pools[name] = (scenes, latents)
        self.pool_cells[name] = cells
        if self.cfg.ear_loss_weight != 1.0:
            self.pool_ears[name] = self.pool_ear_cells(name, scenes)

    def render_workers(self) -> int:
        return self.cfg.render_workers or min(os.cpu_count() or 1, 16)

    def pool_ear_cells(self, name: str, scenes: list) -> torch.Tensor:
        """The ears' latent grids of a pool, drawn once and cached beside its latents."""
        path = self.run_dir / f"ears-{name}.pt"
        if path.exists():
            ears = torch.load(path, map_location="cpu")
            if len(ears) == len(scenes):
                return ears
        workers = self.render_workers()
        log(self.run_dir, f"drawing the ears of the {name} pool ({workers} processes)")
        parts = pool_parts(scenes)
        ears = torch.from_numpy(np.concatenate(list(
            on_workers(ear_part, parts, workers, self.latent_side))))
        torch.save(ears, path)
        return ears

    def ensure_pools(self) -> None:
        if len(self.pools) == 2:
            return
        self.vae.eval().requires_grad_(False)
        for name in ("single", "multi"):
            self.build_pool(name)
        if self.scaling_factor == 1.0:
            self.scaling_factor = float(1.0 / self.pools["multi"][1][:4096].float().std())
            log(self.run_dir, f"latent scaling factor {self.scaling_factor:.4f}")

    # -- stage 3: text encoder + UNet ----------------------------------------------------------
    def unet_batch(self) -> Batch:
        """A batch drawn from one of the pools (some, by `named_ears_share` and
        `named_patterns_share`, of the one-object pool's eared creatures or patterned shapes
        with that feature named)."""
        named = self.named_feature()
        use_single = (named is not None or self.unet_step < self.cfg.single_object_steps
                      or self.rng.random() < 0.25)
        pool = "single" if use_single else "multi"
        scenes, latents = self.pools[pool]
        if named is not None:
            having = self.lone_with(named)
            idx = [having[self.rng.randrange(len(having))] for _ in range(self.cfg.batch)]
        else:
            idx = [self.rng.randrange(len(scenes)) for _ in range(self.cfg.batch)]
        texts, groundings = [], []
        for i in idx:
            if self.rng.random() < self.cfg.caption_dropout:
                text, grounding = "", {}
            elif named is not None:
                text, grounding = grounded_caption(scenes[i], self.rng,
                                                   fine=feature_named(scenes[i], named, self.rng))
            else:
                text, grounding = grounded_caption(scenes[i], self.rng)
            texts.append(text)
            groundings.append(grounding)
        batch_latents = latents[idx].float().to(self.device) * self.scaling_factor
        cells = {side: grid[idx] for side, grid in self.pool_cells[pool].items()}
        ears = self.pool_ears[pool][idx] if pool in self.pool_ears else None
        return Batch(batch_latents, texts, cells, groundings, ears)

    def named_feature(self) -> str | None:
        """The fine feature this batch always names ('ears', 'pattern'), or None for a batch
        of the recipe's own. The coin is drawn only when a share is set, so the recipe's own
        runs keep their random stream."""
        shares = (("ears", self.cfg.named_ears_share), ("pattern", self.cfg.named_patterns_share),
                  ("face", self.cfg.named_faces_share))
        if not any(share > 0 for _, share in shares):
            return None
        coin = self.rng.random()
        for feature, share in shares:
            if coin < share:
                return self.rng.choice(FACE_ONLY) if feature == "face" else feature
            coin -= share
        return None

    def lone_with(self, feature: str) -> list[int]:
        """Indices of the one-object pool's scenes whose object has `feature` to name."""
        if feature not in self._lone_with:
            self._lone_with[feature] = [i for i, scene in enumerate(self.pools["single"][0])
                                        if feature in nameable_features(scene.objects[0])]
            if not self._lone_with[feature]:
                raise ValueError(f"a named-{feature} share is set but the one-object pool "
                                 f"holds no object with {feature} to name")
        return self._lone_with[feature]

    def grounding_targets(self, cells: dict[int, torch.Tensor], groundings: list[dict]
                          ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        tokens = self.tokenizer.model_max_length
        return {side: tuple(t.to(self.device) for t in word_masks(list(cells[side]), groundings,
                                                                  tokens))
                for side in self.grounding_sides}

    def token_ids(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts, padding="max_length", truncation=True,
                              max_length=self.tokenizer.model_max_length,
                              return_tensors="pt").input_ids.to(self.device)

    def text_encoder_frozen(self) -> bool:
        return self.unet_step >= self.cfg.freeze_text_encoder_at

    def train_unet_step(self) -> dict[str, float]:
        """One step of the UNet (and the text encoder until it freezes). Besides the losses it
        reports its wall time (`step_s`) and the part of it spent making the batch, its token
        ids and its grounding targets in Python (`batch_s`), which a GPU waits on. The mean
        of `step_s` over steps is the true rate: each step's `.item()` waits for the device's
        work of the step before."""
        cfg = self.cfg
        started = time.perf_counter()
        lr = unet_learning_rate(cfg, self.unet_step, self.warmed_from)
        for group in self.opt.param_groups:
            group["lr"] = lr
        latents, texts, cells, groundings, ears = self.unet_batch()
        ids = self.token_ids(texts)
        batch_seconds = time.perf_counter() - started
        noise = offset_noise(latents, cfg.noise_offset, cfg.noise_pyramid)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (latents.shape[0],),
                          device=self.device)
        noisy = self.noise.add_noise(latents, noise, t)
        sides = self.grounding_sides
        recorder = AttentionRecorder(sides)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            with torch.set_grad_enabled(not self.text_encoder_frozen()
                                        or self.new_words_from is not None):
                context = self.text_encoder(ids)[0]
            with controlled_attention(self.unet, recorder):
                pred = self.unet(noisy, t, context).sample.float()
        alphas = self.noise.alphas_cumprod.to(self.device)[t]
        snr = alphas / (1 - alphas)
        weight = torch.clamp(snr, max=cfg.min_snr_gamma) / snr
        error = F.mse_loss(pred, noise, reduction="none")
        if self.weights_pixels():
            error = object_weighted_error(
                error, cells[self.latent_side].to(self.device), cfg.object_loss_weight,
                None if ears is None else ears.to(self.device), cfg.ear_loss_weight)
        else:
            error = error.mean(dim=(1, 2, 3))
        loss = (weight * error).mean()
        losses = {"loss": loss.item()}
        if sides:
            targets_started = time.perf_counter()
            targets = self.grounding_targets(cells, groundings)
            batch_seconds += time.perf_counter() - targets_started
            grounding = grounding_loss(recorder, targets)
            loss = loss + cfg.grounding_weight * grounding
            losses["grounding"] = grounding.item()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        self.keep_known_rows()
        self.ema_unet.step(self.unet.parameters())
        if not self.text_encoder_frozen():
            self.ema_text.step(self.text_encoder.parameters())
        self.unet_step += 1
        if self.unet_step == cfg.freeze_text_encoder_at:
            self.ema_text.copy_to(self.text_encoder.parameters())
            self.text_encoder.requires_grad_(False)
            log(self.run_dir, "text encoder frozen (EMA weights)")
        losses["batch_s"] = batch_seconds
        losses["step_s"] = time.perf_counter() - started
        return losses

    def profile(self, steps: int, rows: int = 30) -> Path:
        """Train `steps` UNet steps under torch's profiler and write where their time went, the
        operators with the most time of their own, to `profile.txt` in the run folder. The steps
        count as training. Made for a first minute on a new device: the log's `step_s` says how
        long a step takes, this says what holds it (kernels, launches, Python, copies)."""
        from torch.profiler import ProfilerActivity, profile

        self.ensure_pools()
        self.train_unet_step()  # the first step allocates and tunes; keep it out of the table
        activities = [ProfilerActivity.CPU]
        sort = "self_cpu_time_total"
        if self.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
            sort = "self_device_time_total"
        started = time.perf_counter()
        with profile(activities=activities) as profiler:
            for _ in range(steps):
                self.train_unet_step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / steps
        path = self.run_dir / "profile.txt"
        path.write_text(f"{steps} UNet steps of {self.cfg.batch} on {self.device.type}, "
                        f"{seconds:.4f} s a step under the profiler\n\n"
                        + profiler.key_averages().table(sort_by=sort, row_limit=rows) + "\n")
        log(self.run_dir, f"profiled {steps} steps ({seconds:.4f} s a step): {path}")
        return path

    # -- export --------------------------------------------------------------------------------
    def export(self, folder: Path) -> None:
        """Write the EMA weights as a diffusers StableDiffusionPipeline folder."""
        unet, text = architecture.build_unet(), architecture.build_text_encoder(self.tokenizer)
        unet.load_state_dict(self.unet.state_dict())
        text.load_state_dict(self.text_encoder.state_dict())
        self.ema_unet.copy_to(unet.parameters())
        if not self.text_encoder_frozen():
            self.ema_text.copy_to(text.parameters())
        vae = architecture.build_vae()
        vae.load_state_dict(self.vae.state_dict())
        vae.register_to_config(scaling_factor=self.scaling_factor)
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text, tokenizer=self.tokenizer, unet=unet,
            scheduler=architecture.build_scheduler(), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
        pipe.save_pretrained(folder, safe_serialization=True)
        write_captioner_spec(folder)  # the checker is trained and copied in separately
        recipe = {k: v for k, v in asdict(self.cfg).items() if not k.endswith("_dir")}
        (folder / "training.json").write_text(json.dumps(
            {"vae_steps": self.vae_step, "unet_steps": self.unet_step, "config": recipe},
            indent=2))
        log(self.run_dir, f"exported to {folder}")

    # -- driver --------------------------------------------------------------------------------
    def run(self, minutes: float) -> None:
        """Train until `minutes` pass, the recipe ends or SIGTERM/SIGINT arrives; then save."""
        deadline = time.time() + minutes * 60
        last_save = time.time()
        losses: list[dict[str, float]] = []
        stop_requested = []
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop_requested.append(True))
        while time.time() < deadline and not stop_requested:
            if self.vae_step < self.cfg.vae_steps:
                losses.append(self.train_vae_step())
                stage, step = "vae", self.vae_step
            elif self.unet_step < self.cfg.unet_steps:
                self.ensure_pools()
                losses.append(self.train_unet_step())
                stage, step = "unet", self.unet_step
                if step % self.cfg.export_every == 0:
                    self.export(Path(self.cfg.export_dir))
                    if self.cfg.keep_exports:
                        shutil.copytree(self.cfg.export_dir, f"{self.cfg.export_dir}-{step}",
                                        dirs_exist_ok=True)
            else:
                break
            if step % 100 == 0:
                keys = dict.fromkeys(key for item in losses for key in item)
                means = " ".join(
                    f"{key} {np.mean([item[key] for item in losses if key in item]):.4f}"
                    for key in keys)
                log(self.run_dir, f"{stage} step {step} {means}")
                losses.clear()
            if time.time() - last_save > self.cfg.checkpoint_minutes * 60:
                self.save()
                last_save = time.time()
        self.save()
        if self.unet_step > 0:
            self.export(Path(self.cfg.export_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--run-dir", default=TrainConfig.run_dir)
    parser.add_argument("--export-dir", default=None,
                        help=f"where to export (default: the run's, else {TrainConfig.export_dir})")
    parser.add_argument("--warm-start", default="", metavar="DIR",
                        help="exported model to continue from when there is no checkpoint "
                             "(default: the export folder)")
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="first profile this many UNet steps into <run-dir>/profile.txt")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field (a resumed run keeps its own recipe "
                             "otherwise), e.g. --set vae_steps=5000")
    args = parser.parse_args()
    overrides = dict(item.partition("=")[::2] for item in args.set)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = run_config(args.run_dir, args.export_dir, args.warm_start, overrides)
    trainer = Trainer(cfg, device)
    if args.export_only:
        trainer.export(Path(cfg.export_dir))
    else:
        if args.profile:
            trainer.profile(args.profile)
        trainer.run(args.minutes)


if __name__ == "__main__":
    main()
