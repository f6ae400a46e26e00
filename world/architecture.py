"""Sizes of the bundled sticker-world model, in one place, from diffusers/transformers classes.

The model is an ordinary Stable Diffusion pipeline in miniature: 64 px images, a 4-channel
16x16 latent, a 3-layer CLIP text encoder over our own vocabulary, and a UNet whose
cross-attention runs at 16x16 and 8x8 latents. Nothing in the engine special-cases it.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from world.scene import base_vocabulary, fine_vocabulary, person_vocabulary
from world.vocab import write_vocabulary

IMAGE_SIZE = 64
MAX_TOKENS = 40
TEXT_WIDTH = 128


def build_tokenizer(folder: Path) -> CLIPTokenizer:
    """Write the world's vocabulary into `folder` and load it as a CLIPTokenizer: the coarse
    grammar's words first, then the fine-feature words, then a face's identity words, each
    tier after the ones before (see `write_vocabulary`)."""
    write_vocabulary(base_vocabulary(), folder, fine_vocabulary(), person_vocabulary())
    tokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A small CLIP text encoder with randomly initialised weights."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
        projection_dim=TEXT_WIDTH, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return CLIPTextModel(config)


def build_vae() -> AutoencoderKL:
    """A 0.9M-parameter KL autoencoder: 64x64x3 <-> 16x16x4."""
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16,
        mid_block_add_attention=False)


def build_unet() -> UNet2DConditionModel:
    """A 4.8M-parameter conditional UNet with cross-attention at 16x16 and 8x8."""
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4,
        block_out_channels=(64, 96, 128), layers_per_block=1, norm_num_groups=16,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=4)


def build_scheduler() -> DDIMScheduler:
    """SD 1.x's noise schedule (epsilon prediction) as a DDIM scheduler."""
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False,
                         steps_offset=1, prediction_type="epsilon")
