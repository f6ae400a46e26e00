"""Tuning the VAE's decoder: the encoder (so every latent's meaning) stays exactly as it was,
the decoder learns, and the reconstruction of the objects gets better."""

from __future__ import annotations

import torch

from world.architecture import build_vae
from world.tune_decoder import tune, tuning_pool


def weighted_error(vae, images: torch.Tensor, weights: torch.Tensor) -> float:
    with torch.no_grad():
        recon = vae.decode(vae.encode(images).latent_dist.mean).sample
    return float(((recon - images).abs() * weights).mean())


def test_the_decoder_learns_and_the_encoder_does_not_move():
    torch.manual_seed(0)
    vae = build_vae()
    images, weights = tuning_pool(12, seed="test")
    assert weights.max() > weights.min() == 1.0  # objects weigh more than the background
    encoder = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in vae.decoder.state_dict().items()}
    before = weighted_error(vae, images, weights)
    tune(vae, images, weights, minutes=5, steps=40, batch=6, lr=1e-3, crop=8, log_every=20)
    assert all(torch.equal(v, vae.encoder.state_dict()[k]) for k, v in encoder.items())
    assert any(not torch.equal(v, vae.decoder.state_dict()[k]) for k, v in decoder.items())
    assert weighted_error(vae, images, weights) < 0.8 * before
