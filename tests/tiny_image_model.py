"""A tiny random-weight CLIP vision model, saved the way a real one is laid out.

The worker loads it by folder name through transformers' auto classes, as it would load
openai/clip-vit-base-patch32, to embed pictures for the photo check and the self-check.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel


def make_tiny_image_model(folder: Path, seed: int = 0) -> Path:
    """Write a random tiny CLIP vision model (32 px images) and its processor to `folder`."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, image_size=32, patch_size=8,
                              projection_dim=32)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
