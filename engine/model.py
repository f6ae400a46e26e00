"""Loading a Stable Diffusion 1.x/2.x checkpoint (or our bundled model) and its basic transforms.

One code path for every model: the components of a diffusers StableDiffusionPipeline folder or
hub id. SD 2.x's v-prediction, other text-encoder widths, token lengths and latent sizes are
read from the components' configs, never assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image

from engine.errors import ModelLoadError
from engine.images import fit_square
from engine.safety import SafetyChecker, load_safety_checker

log = logging.getLogger(__name__)
BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "sticker-world"


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else the best available: CUDA, then Apple MPS, then CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class DiffusionModel:
    """The frozen parts of a text-to-image latent diffusion model, ready on one device."""

    source: str
    tokenizer: object
    text_encoder: torch.nn.Module
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: DDIMScheduler
    device: torch.device
    dtype: torch.dtype  # of the UNet and VAE; the text encoder stays in fp32
    safety: SafetyChecker | None = None  # blacks out flagged pictures (see engine/safety.py)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self) -> int:
        return int(self.unet.config.sample_size) * self.vae_scale

    @property
    def text_width(self) -> int:
        return int(self.text_encoder.get_input_embeddings().weight.shape[1])

    @property
    def max_tokens(self) -> int:
        return int(self.tokenizer.model_max_length)

    def token_ids(self, texts: list[str]) -> torch.Tensor:
        """Token ids padded to the encoder's length, as the pipeline would make them."""
        return self.tokenizer(texts, padding="max_length", max_length=self.max_tokens,
                              truncation=True, return_tensors="pt").input_ids.to(self.device)

    def tokens(self, text: str) -> list[str]:
        """The tokens of a text, start and end markers included, without padding."""
        ids = self.tokenizer(text, truncation=True, max_length=self.max_tokens).input_ids
        return self.tokenizer.convert_ids_to_tokens(ids)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings (batch, tokens, width) in the UNet's dtype."""
        return self.text_encoder(self.token_ids(texts))[0].to(self.dtype)

    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """The scaled latent (1, C, h, w) of an image, fitted to the model's size."""
        pixels = image_to_tensor(fit_square(image, self.image_size)).to(self.device, self.dtype)
        return self.vae.encode(pixels).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Images of scaled latents."""
        pixels = self.vae.decode(latents.to(self.dtype) / self.vae.config.scaling_factor).sample
        images = tensor_to_images(pixels)
        return self.safety(images) if self.safety is not None else images

    def fresh_scheduler(self, steps: int) -> DDIMScheduler:
        """A DDIM scheduler of this model with its timesteps set."""
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        return scheduler


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> (1, 3, H, W) in [-1, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def tensor_to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> RGB images."""
    arr = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return [Image.fromarray(a.permute(1, 2, 0).cpu().numpy()) for a in arr]


def load_model(source: str | Path | None = None, device: str | None = None,
               half: bool | None = None, safety: bool = False) -> DiffusionModel:
    """Load a diffusers Stable Diffusion folder or hub id (default: the bundled model).

    A local folder is read with `local_files_only`, so it never touches the network. On a GPU
    the UNet and VAE run in half precision unless `half=False`. `safety`: use the model's own
    safety checker on every picture it makes, when it has one (a warning says when not).
    """
    source = str(source or BUNDLED_MODEL)
    local = Path(source).is_dir()
    if not local and Path(source).exists():
        raise ModelLoadError(f"{source} is a file; a model is a diffusers folder or a hub id")
    torch_device = pick_device(device)
    if half is None:
        half = torch_device.type == "cuda"
    dtype = torch.float16 if half else torch.float32
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            source, local_files_only=local, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load a Stable Diffusion model from {source!r}: {exc}") from exc
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False).eval()
    pipe.unet.to(torch_device)
    pipe.vae.to(torch_device)
    pipe.text_encoder.to(torch_device, torch.float32)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    checker = load_safety_checker(source, torch_device) if safety else None
    if safety and checker is None:
        log.warning("the safety checker is on, but %s has none: pictures are not checked",
                    source)
    return DiffusionModel(source, pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae,
                          scheduler, torch_device, dtype, checker)
