"""Using learned concepts in a loaded model: placeholder tokens and their embedding rows.

A concept of n vectors becomes n tokens, `<name> <name>_1 ... <name>_{n-1}`, named as
diffusers names them. A prompt says `<name>` once; `expand_prompt` spells out the n tokens
before tokenizing.

A model reads them only inside `with concepts_in_use(model, concepts):`: the tokens live in a
copy of the tokenizer and a forward hook on the text encoder's token embedding puts the vectors
at their positions, as learning does (engine/textual_inversion.py). Afterwards the model is
exactly as before, with no token, embedding row or hook of the block left, so a long-lived
worker's model serves everyone's words without collecting them.

Not thread-safe on a shared model: the caller serialises model use, as it must for the GPU
anyway.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from engine.concepts import Concept, check_width
from engine.errors import ConceptFileError, PromptError
from oneword import names

if TYPE_CHECKING:  # the model module loads diffusers; only its type is needed here
    from engine.model import DiffusionModel

# Tokenizer attribute recording how many vectors each concept in use has (a tokenizer that
# diffusers filled has none: its tokens are counted instead).
_COUNTS_ATTR = "_oneword_concept_vectors"

# `<name>`, unless it is part of `<name>_k` or already followed by it: expanding an expanded
# prompt changes nothing.
_PLACEHOLDER = re.compile(r"<([^<>\s|]+)>(?!_\d)(?!\s*<\1>_1)")


@contextmanager
def concepts_in_use(model: DiffusionModel, concepts: Iterable[Concept]) -> Iterator[None]:
    """Let the model read the concepts' tokens inside the `with` block, and leave no trace.

    Within the block `model.tokenizer` is a copy that knows the tokens (so `expand_prompt`,
    token positions and attention-map labels work as with installed concepts) and the text
    encoder sees each token's vector through a hook; the encoder's weights are never written.
    """
    concepts = list(concepts)
    _check_fits(model, concepts)
    if not concepts:
        yield
        return
    shared = model.tokenizer
    embedding = model.text_encoder.get_input_embeddings()
    tokenizer = copy.deepcopy(shared)
    vocab = tokenizer.get_vocab()
    tokenizer.add_tokens([t for c in concepts for t in c.tokens if t not in vocab])
    counts = _installed_counts(tokenizer)
    rows: dict[int, torch.Tensor] = {}
    for concept in concepts:
        ids = tokenizer.convert_tokens_to_ids(concept.tokens)
        rows.update(zip(ids, concept.vectors.to(embedding.weight.device), strict=True))
        counts[concept.name] = concept.num_vectors
    setattr(tokenizer, _COUNTS_ATTR, counts)
    ids = torch.tensor(sorted(rows), dtype=torch.long, device=embedding.weight.device)
    vectors = torch.stack([rows[i] for i in sorted(rows)])
    slots: list[torch.Tensor] = []  # where the last call's input had a concept token

    def swap_ids(module, inputs):
        (input_ids, *rest) = inputs
        which = torch.searchsorted(ids, input_ids).clamp(max=len(ids) - 1)
        hit = ids[which] == input_ids
        slots[:] = [hit, which]
        return (input_ids.masked_fill(hit, 0), *rest)  # any real row; overwritten below

    def put_vectors(module, inputs, output):
        hit, which = slots
        if not hit.any():
            return None
        output = output.clone()
        output[hit] = vectors[which[hit]].to(output.dtype)
        return output

    # the innermost block swaps first and writes last, so its vectors win when blocks nest
    handles = [embedding.register_forward_pre_hook(swap_ids, prepend=True),
               embedding.register_forward_hook(put_vectors)]
    model.tokenizer = tokenizer
    try:
        yield
    finally:
        model.tokenizer = shared
        for handle in handles:
            handle.remove()


def expand_prompt(model_or_tokenizer, prompt: str) -> str:
    """The prompt with each `<name>` spelled out as its tokens `<name> <name>_1 ...`.

    Names are case-insensitive. PromptError names any `<...>` that is not an installed concept.
    """
    counts = _installed_counts(_tokenizer(model_or_tokenizer))

    def spell_out(match: re.Match) -> str:
        name = match.group(1).lower()
        if name not in counts:
            known = ", ".join(f"<{n}>" for n in sorted(counts)) or "none yet"
            raise PromptError(f"I don't know the concept <{match.group(1)}> (known: {known})")
        return " ".join([f"<{name}>"] + [f"<{name}>_{i}" for i in range(1, counts[name])])

    return _PLACEHOLDER.sub(spell_out, prompt)


def _check_fits(model: DiffusionModel, concepts: list[Concept]) -> None:
    for concept in concepts:
        check_width(concept, model)
        if concept.num_vectors > model.max_tokens - 2:
            raise ConceptFileError(f"{concept.token} has {concept.num_vectors} vectors; a prompt "
                                   f"holds at most {model.max_tokens - 2} tokens")


def _tokenizer(model_or_tokenizer):
    return getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)


def _installed_counts(tokenizer) -> dict[str, int]:
    """Our record of installed concepts, else (a tokenizer diffusers filled) read off its tokens."""
    recorded = getattr(tokenizer, _COUNTS_ATTR, None)
    if recorded is not None:
        return dict(recorded)
    vocab = tokenizer.get_vocab()
    counts = {}
    for token in tokenizer.get_added_vocab():
        match = re.fullmatch(r"<([^<>A-Z]+)>", token)
        if match and names.is_concept_name(match.group(1)):
            count = 1
            while f"{token}_{count}" in vocab:
                count += 1
            counts[match.group(1)] = count
    return counts
