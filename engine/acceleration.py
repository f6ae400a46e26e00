"""GPU speed-ups that change results only by float rounding: channels-last and torch.compile.

Both apply on CUDA only; on other devices `accelerate` leaves the model as it is (channels-last
helps cuDNN's convolutions in half precision, and compiling on a CPU costs more than it saves
for the short runs a chat asks for).
"""

from __future__ import annotations

import torch

from engine.model import DiffusionModel


def accelerate(model: DiffusionModel, compile_unet: bool = False) -> DiffusionModel:
    """Put the UNet and VAE in channels-last memory format and, with `compile_unet`, compile
    the UNet with torch.compile; returns the same model. A no-op off CUDA.

    The compiled UNet keeps its attention processors out of the compiled graphs
    (`engine.attention_control` marks them), so prompt-to-prompt's controllers, which change
    from step to step, cause no recompilation; the first calls at each shape are slow.
    """
    if model.device.type != "cuda":
        return model
    model.unet.to(memory_format=torch.channels_last)
    model.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        model.unet.compile(dynamic=False)
    return model
