"""Concept files: a learned word saved as text-encoder input vectors.

We write the diffusers textual-inversion layout, a safetensors file `{"<name>": [n, d]}`, so
other tools load our concepts; our own metadata (name, kind, steps, base model) rides in the
safetensors header. We read that layout, AUTOMATIC1111's `.pt` (`string_to_param`) and the
`emb_params` layout. Pickled files are opened with `torch.load(weights_only=True)` only, so a
concept file from a stranger can never run code.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import safetensors.torch
import torch

from engine.errors import ConceptFileError, ConceptNameError, ConceptWidthError
from oneword import names
from oneword.jobs import ConceptKind

if TYPE_CHECKING:  # the model module loads diffusers; only its type is needed here
    from engine.model import DiffusionModel

FORMAT_VERSION = 1
MAX_FILE_BYTES = 16 * 1024 * 1024  # a 75-vector SD 2.x concept is 0.3 MB
_RESERVED_KEYS = ("format", "oneword_format", "name", "kind", "vectors", "width", "steps",
                  "base_model")


@dataclass
class Concept:
    """A learned word: `vectors[i]` is the input embedding of the word's i-th token."""

    name: str
    kind: str
    vectors: torch.Tensor  # [n, d] float32
    steps: int = 0
    base_model: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # free-form metadata, saved as is

    def __post_init__(self):
        self.name = concept_name(self.name)
        self.kind = concept_kind(self.kind)
        self.vectors = as_vectors(self.vectors)

    @property
    def token(self) -> str:
        """The placeholder a prompt uses for this concept, e.g. '<teddy>'."""
        return f"<{self.name}>"

    @property
    def tokens(self) -> list[str]:
        """One token per vector, named as diffusers names them: <name>, <name>_1, ..."""
        return [self.token] + [f"{self.token}_{i}" for i in range(1, self.num_vectors)]

    @property
    def num_vectors(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def width(self) -> int:
        """The text encoder width the concept was learned for."""
        return int(self.vectors.shape[1])


def concept_name(name: str) -> str:
    """A concept name, lowercased, or ConceptNameError if it cannot be a token (the rule is
    :mod:`oneword.names`: names become `<name>` in prompts)."""
    try:
        return names.concept_name(name)
    except names.InvalidName as exc:
        raise ConceptNameError(f"{name!r} can't be a concept name. {exc}") from None


def concept_kind(kind: object) -> str:
    """`kind` as a concept kind's value ("object", "person", "style"), else ValueError."""
    try:
        return ConceptKind(kind).value
    except ValueError:
        kinds = ", ".join(k.value for k in ConceptKind)
        raise ValueError(f"concept kind must be one of {kinds}, not {kind!r}") from None


def as_vectors(tensor: object) -> torch.Tensor:
    """A [n, d] float32 CPU copy of embedding vectors ([d] counts as one vector)."""
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise ConceptFileError("the embedding is not a tensor of floating-point numbers")
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2 or tensor.numel() == 0:
        raise ConceptFileError(
            f"the embedding has shape {tuple(tensor.shape)}, not [vectors, width]")
    vectors = tensor.detach().to("cpu", torch.float32).contiguous().clone()
    if not torch.isfinite(vectors).all():
        raise ConceptFileError("the embedding contains NaN or infinite values")
    return vectors


def check_width(concept: Concept, model: DiffusionModel) -> None:
    """ConceptWidthError unless the concept fits the model's text encoder (SD 1.x 768, 2.x 1024)."""
    if concept.width != model.text_width:
        raise ConceptWidthError(concept.width, model.text_width)


def save_concept(concept: Concept, path: str | Path) -> Path:
    """Write `concept` to `path` in the diffusers layout with our metadata; atomic."""
    path = Path(path)
    metadata = {**{k: str(v) for k, v in concept.extra.items()},
                "format": "pt", "oneword_format": str(FORMAT_VERSION), "name": concept.name,
                "kind": concept.kind, "vectors": str(concept.num_vectors),
                "width": str(concept.width), "steps": str(concept.steps),
                "base_model": concept.base_model}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        safetensors.torch.save_file({concept.token: concept.vectors.contiguous()}, tmp, metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_concept(path: str | Path) -> Concept:
    """Read a concept file of any layout we know; ConceptFileError if it is not one."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConceptFileError(f"{path.name} is too large to be a concept file")
        data = path.read_bytes()
    except OSError as exc:
        raise ConceptFileError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    try:
        if _looks_like_safetensors(data):
            tensors, metadata = _read_safetensors(data)
        else:
            tensors, metadata = _read_torch(data), {}
        return _concept_from(tensors, metadata, path.stem)
    except ConceptFileError as exc:
        raise ConceptFileError(f"{path.name}: {exc}") from exc


def _looks_like_safetensors(data: bytes) -> bool:
    """Safetensors: an 8-byte little-endian header size, then that many bytes of JSON."""
    if len(data) < 10:
        return False
    (header_size,) = struct.unpack("<Q", data[:8])
    return 8 + header_size <= len(data) and data[8:9] == b"{"


def _read_torch(data: bytes) -> dict:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        raise ConceptFileError(
            "not a readable embedding file (damaged, or it holds more than tensors)") from exc
    if isinstance(state, torch.Tensor):
        return {"emb_params": state}
    if not isinstance(state, dict):
        raise ConceptFileError("not a textual-inversion embedding")
    return state


def _read_safetensors(data: bytes) -> tuple[dict, dict[str, str]]:
    try:
        tensors = safetensors.torch.load(data)
        (header_size,) = struct.unpack("<Q", data[:8])
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
    except Exception as exc:  # safetensors raises its own error type, json/struct theirs
        raise ConceptFileError("not a safetensors or PyTorch embedding file") from exc
    return tensors, metadata if isinstance(metadata, dict) else {}


def _concept_from(state: dict, metadata: dict[str, str], stem: str) -> Concept:
    """Recognise the layout of a loaded file and build the Concept."""
    if "oneword_format" in metadata:
        return _own_concept(state, metadata)
    if "string_to_param" in state:  # AUTOMATIC1111
        params = state["string_to_param"]
        if not isinstance(params, dict) or "*" not in params:
            raise ConceptFileError("an AUTOMATIC1111 embedding without its '*' vectors")
        names, vectors, steps = [state.get("name"), stem], params["*"], state.get("step")
    elif "emb_params" in state:
        names, vectors, steps = [stem], state["emb_params"], None
    elif "clip_l" in state or "clip_g" in state:
        raise ConceptFileError("an SDXL embedding; only SD 1.x and 2.x concepts are supported")
    elif len(state) == 1:  # diffusers: {token: vectors}
        token, vectors = next(iter(state.items()))
        names, steps = [str(token), stem], None
    else:
        raise ConceptFileError(
            f"unknown embedding layout (keys: {', '.join(map(str, list(state)[:5]))})")
    steps = int(steps) if isinstance(steps, int) else 0
    return Concept(_usable_name(names), "object", vectors, steps=steps)


def _own_concept(state: dict, metadata: dict[str, str]) -> Concept:
    try:
        if int(metadata["oneword_format"]) > FORMAT_VERSION:
            raise ConceptFileError("made by a newer version of OneWord; please update")
        name = concept_name(metadata["name"])
        vectors = state[f"<{name}>"]
        steps = int(metadata.get("steps", 0))
        extra = {k: v for k, v in metadata.items() if k not in _RESERVED_KEYS}
        return Concept(name, metadata.get("kind", "object"), vectors, steps=steps,
                       base_model=metadata.get("base_model", ""), extra=extra)
    except (KeyError, ValueError, ConceptNameError) as exc:
        raise ConceptFileError(f"damaged concept metadata ({exc})") from exc


def _usable_name(candidates: list[object]) -> str:
    """The first candidate that can be made a valid name: foreign files name things freely."""
    for candidate in candidates:
        if isinstance(candidate, str):
            cleaned = re.sub(rf"[^{names.NAME_CHARS}]+", "-", candidate.lower()).strip("-_")
            if names.is_concept_name(cleaned[:names.MAX_NAME_LENGTH]):
                return cleaned[:names.MAX_NAME_LENGTH]
    return "concept"
