"""A tiny random-weight Stable Diffusion folder, built the way a real one is laid out.

Tests load it through the engine's loader like any SD checkpoint: a CLIP tokenizer written from
our own vocabulary files, a CLIP text encoder, a conditional UNet, a KL VAE and a DDIM scheduler.
The vocabulary files (tests/data/tiny_tokenizer) hold the sticker world's words and a few
everyday ones, one token each; they were written once by world/vocab.py, so building the model
imports nothing of world/ and engine tests run without it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.model import image_to_tensor
from tests.pictures import test_photo

TOKENIZER_FILES = Path(__file__).parent / "data" / "tiny_tokenizer"


def make_tiny_model(folder: Path, prediction_type: str = "epsilon", text_width: int = 32,
                    max_tokens: int = 32, seed: int = 0) -> Path:
    """Write a random tiny SD pipeline (32 px images, 16x16x4 latents) to `folder`."""
    torch.manual_seed(seed)
    tok_dir = folder / "_tokenizer_src"
    shutil.copytree(TOKENIZER_FILES, tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=max_tokens)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=max_tokens,
        projection_dim=text_width, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 32),
        layers_per_block=1, norm_num_groups=8, cross_attention_dim=text_width,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=2)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 16), layers_per_block=1, norm_num_groups=8)
    with torch.no_grad():
        # Trained noise predictors are smooth and small; a fresh UNet's output layer is not.
        unet.conv_out.weight.mul_(0.1)
        unet.conv_out.bias.mul_(0.1)
        vae.register_to_config(scaling_factor=1.0 / _latent_std(vae))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                              prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@torch.no_grad()
def _latent_std(vae: AutoencoderKL) -> float:
    """Spread of the VAE's latents over a few test photos, to scale them to unit variance."""
    images = [test_photo(seed, 32) for seed in range(8)]
    pixels = torch.stack([image_to_tensor(im)[0] for im in images])
    return float(vae.encode(pixels).latent_dist.mean.std())
