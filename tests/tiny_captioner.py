"""A tiny random-weight BLIP captioning model, saved the way a real one is laid out.

The worker loads it by folder name through transformers' auto classes, as it would load
Salesforce/blip-image-captioning-base: a BERT tokenizer written from our own word list, a
BLIP image processor and a BLIP captioning model with a one-layer vision and text tower.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = ["a", "photo", "of", "dog", "cat", "man", "tree", "hat", "sitting", "on", "the", "red",
         "big", "small", "with", "and", "in"]


def make_tiny_captioner(folder: Path, seed: int = 0) -> Path:
    """Write a random tiny BLIP captioner (32 px images) to `folder`."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(SPECIAL + WORDS)},
                              bos_token="[DEC]")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL}
    config = BlipConfig(
        text_config=dict(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32,
                         intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=ids["[DEC]"], sep_token_id=ids["[SEP]"],
                         eos_token_id=ids["[SEP]"], pad_token_id=ids["[PAD]"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=32)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    processor.save_pretrained(folder)
    return folder
