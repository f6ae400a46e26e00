"""Which tokens of an edited prompt correspond to which tokens of the source prompt.

Prompt-to-prompt copies the source's cross-attention into the edited prompt's tokens. A word-level
diff of the two prompts gives the correspondence for every kind of edit at once: equal words map
token to token, a swapped word's tokens share the attention of the word it replaces (also when a
one-token word becomes a multi-vector concept), and added words keep their own attention.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch

from engine.errors import PromptError


@dataclass(frozen=True)
class TokenSpans:
    """Token positions (after the start token) of each word of a prompt."""

    words: list[str]
    spans: list[range]
    length: int  # tokens including start and end markers

    def positions(self, word: str) -> list[int]:
        """Token positions of every occurrence of `word` (case-insensitive)."""
        word = word.lower()
        return [p for w, span in zip(self.words, self.spans, strict=True) if w.lower() == word
                for p in span]


def token_spans(tokenizer, prompt: str) -> TokenSpans:
    """Split a prompt into words and find the tokens each one becomes."""
    words = prompt.split()
    spans, position = [], 1
    for word in words:
        count = len(tokenizer(word, add_special_tokens=False).input_ids)
        spans.append(range(position, position + count))
        position += count
    length = position + 1
    if length > tokenizer.model_max_length:
        raise PromptError(f"the prompt is too long: {length} tokens, the model reads "
                          f"{tokenizer.model_max_length}")
    return TokenSpans(words, spans, length)


@dataclass(frozen=True)
class TokenAlignment:
    """attention_target = attention_source @ mapper, where `from_source` is 1."""

    mapper: torch.Tensor  # (source tokens, target tokens)
    from_source: torch.Tensor  # (target tokens,) 1: copy from source, 0: keep own attention


def align(source: TokenSpans, target: TokenSpans, max_tokens: int) -> TokenAlignment:
    """Alignment of all `max_tokens` positions (padding included) from a word-level diff."""
    mapper = torch.zeros(max_tokens, max_tokens)
    from_source = torch.zeros(max_tokens)

    def link(src: list[int], tgt: list[int]) -> None:
        for j in tgt:
            mapper[src, j] = 1.0 / len(src)
            from_source[j] = 1.0

    link([0], [0])
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in source.words],
                                      b=[w.lower() for w in target.words], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        src = [p for span in source.spans[a0:a1] for p in span]
        tgt = [p for span in target.spans[b0:b1] for p in span]
        if op == "equal":
            for i, j in zip(src, tgt, strict=True):
                link([i], [j])
        elif op == "replace":
            link(src, tgt)
        # "insert": new tokens keep their own attention; "delete": source tokens are dropped
    # End marker and padding: align from the ends, the last source pad filling any surplus.
    for j in range(target.length - 1, max_tokens):
        i = min(source.length - 1 + (j - target.length + 1), max_tokens - 1)
        link([i], [j])
    return TokenAlignment(mapper, from_source)
