"""Hooking a controller into a UNet's attention through diffusers attention processors.

Every attention layer gets a `ControlledAttnProcessor`. When the controller asks for a layer at
the current step, the processor forms the attention probabilities explicitly, hands them to the
controller (which may record or rewrite them) and applies them; everywhere else it defers to
diffusers' fused `AttnProcessor2_0`, so the cost of control is paid only where it is used.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor2_0,
    FusedAttnProcessor2_0,
)


@dataclass(frozen=True)
class AttentionLayer:
    """Where an attention call happens: its processor name, kind and spatial resolution."""

    name: str
    is_cross: bool
    resolution: int  # side of the square query grid

    @property
    def place(self) -> str:
        return self.name.split("_")[0]  # "down", "mid" or "up"


class AttentionController(Protocol):
    """What a processor asks of a controller."""

    def wants(self, layer: AttentionLayer) -> bool:
        """Whether this layer's probabilities are needed at the current step."""

    def __call__(self, probs: torch.Tensor, layer: AttentionLayer) -> torch.Tensor:
        """Record and/or rewrite probabilities shaped (batch, heads, queries, keys)."""


class ControlledAttnProcessor:
    """An attention processor that exposes probabilities to a controller on request."""

    def __init__(self, controller: AttentionController, name: str):
        self.controller = controller
        self.name = name
        self.fused = AttnProcessor2_0()
        self.fused_qkv = FusedAttnProcessor2_0()  # for a UNet whose Q, K, V are one matmul

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        spatial = hidden_states.ndim == 4
        queries = (hidden_states.shape[2] * hidden_states.shape[3] if spatial
                   else hidden_states.shape[1])
        layer = AttentionLayer(self.name, encoder_hidden_states is not None,
                               math.isqrt(queries))
        if not self.controller.wants(layer):
            fast = self.fused_qkv if getattr(attn, "fused_projections", False) else self.fused
            return fast(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return self._explicit(attn, hidden_states, encoder_hidden_states, attention_mask, temb,
                              layer)

    def _explicit(self, attn: Attention, hidden_states: torch.Tensor,
                  encoder_hidden_states: torch.Tensor | None, attention_mask: torch.Tensor | None,
                  temb: torch.Tensor | None, layer: AttentionLayer) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        shape = hidden_states.shape
        if hidden_states.ndim == 4:
            hidden_states = hidden_states.flatten(2).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)
        probs = probs.view(batch, attn.heads, *probs.shape[1:])
        probs = self.controller(probs, layer).reshape(batch * attn.heads, *probs.shape[2:])
        out = attn.batch_to_head_dim(torch.bmm(probs.to(value.dtype), value))
        out = attn.to_out[1](attn.to_out[0](out))
        if len(shape) == 4:
            out = out.transpose(1, 2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class UncompiledAttnProcessor(ControlledAttnProcessor):
    """The processor for a UNet compiled with torch.compile: the compiler leaves it out of its
    graphs (a graph break at each attention layer), so a controller whose choices change from
    step to step does not make it compile a graph per step."""

    @torch.compiler.disable
    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return super().__call__(*args, **kwargs)


@contextlib.contextmanager
def controlled_attention(unet: torch.nn.Module, controller: AttentionController) -> Iterator[None]:
    """Route every attention layer of `unet` through `controller` inside the block."""
    original = unet.attn_processors
    compiled = getattr(unet, "_compiled_call_impl", None) is not None  # set by Module.compile
    processor = UncompiledAttnProcessor if compiled else ControlledAttnProcessor
    unet.set_attn_processor({name: processor(controller, name.replace(".", "_"))
                             for name in original})
    try:
        yield
    finally:
        unet.set_attn_processor(original)


def cross_attention_resolutions(unet: torch.nn.Module) -> list[int]:
    """The query-grid sides at which this UNet has cross-attention, largest first."""
    latent = int(unet.config.sample_size)
    sides = set()
    for i, block in enumerate(unet.down_blocks):
        if getattr(block, "has_cross_attention", False):
            sides.add(latent // 2 ** i)
    if getattr(unet.mid_block, "has_cross_attention", False):
        sides.add(latent // 2 ** (len(unet.down_blocks) - 1))
    return sorted(sides, reverse=True)


def map_resolution(unet: torch.nn.Module) -> int:
    """Resolution of the cross-attention maps used for masks and pictures.

    The reference takes SD's 16x16 maps: a quarter of its 64x64 latent. Smaller models keep
    16x16 when they have it (coarser maps cannot outline an object); larger ones a quarter of
    their latent side. Without such a layer, the nearest coarser one, else the finest.
    """
    target = max(int(unet.config.sample_size) // 4, 16)
    sides = cross_attention_resolutions(unet)
    fitting = [side for side in sides if side <= target]
    return max(fitting) if fitting else min(sides)


class AttentionStore:
    """Sums cross-attention maps (mean over heads) per batch item over layers and steps."""

    def __init__(self, resolution: int, items: slice = slice(None)):
        self.resolution = resolution
        self.items = items  # which batch items to keep (e.g. the conditional half)
        self.total: torch.Tensor | None = None
        self.count = 0

    def wants(self, layer: AttentionLayer) -> bool:
        return layer.is_cross and layer.resolution == self.resolution

    def __call__(self, probs: torch.Tensor, layer: AttentionLayer) -> torch.Tensor:
        if self.wants(layer):
            self.add(probs)
        return probs

    def add(self, probs: torch.Tensor) -> None:
        """Accumulate maps of probabilities shaped (batch, heads, queries, keys)."""
        maps = probs[self.items].float().mean(dim=1)
        self.total = maps if self.total is None else self.total + maps
        self.count += 1

    def maps(self) -> torch.Tensor:
        """Average maps (items, side, side, keys)."""
        if self.total is None:
            raise RuntimeError("no cross-attention was recorded")
        side = self.resolution
        mean = self.total / self.count
        return mean.reshape(mean.shape[0], side, side, mean.shape[-1])
