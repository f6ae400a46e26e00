"""Build a CLIP-format BPE vocabulary (vocab.json + merges.txt) for the sticker world.

A tiny BPE is trained on the grammar's words so each of them is one token, exactly as the
words of a real caption are for SD's tokenizer; every byte stays in the vocabulary, so any
other text still tokenizes (as characters). The files load with transformers' CLIPTokenizer.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def train_bpe(words: list[str]) -> list[tuple[str, str]]:
    """Merges, most frequent pair first, until every word is a single symbol."""
    return learn_merges({w: list(w[:-1]) + [w[-1] + "</w>"] for w in words})


def apply_merges(word: str, merges: list[tuple[str, str]]) -> list[str]:
    """A word's symbols after applying `merges` in order, as the tokenizer does."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    for pair in merges:
        symbols = _merge(symbols, pair)
    return symbols


def learn_merges(segmented: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Merges, most frequent pair first, until every word of `segmented` is one symbol."""
    segmented = dict(segmented)
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in segmented.values():
            pairs.update(zip(symbols, symbols[1:], strict=False))
        if not pairs:
            return merges
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        segmented = {w: _merge(symbols, best) for w, symbols in segmented.items()}


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def write_vocabulary(words: list[str], folder: Path,
                     *extra_tiers: Sequence[str]) -> int:
    """Write vocab.json and merges.txt into `folder`; returns the vocabulary size.

    Each tier of `extra_tiers` is appended after everything before it (its merges after the
    earlier merges, its tokens after the earlier tokens), so a model trained on the vocabulary
    of the earlier tiers keeps every token id and only needs new embedding rows."""
    folder.mkdir(parents=True, exist_ok=True)
    base = list(_bytes_to_unicode().values())
    merges = train_bpe(words)
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + [BOS, EOS]
    known = set(words)
    for tier in extra_tiers:
        extra = [w for w in dict.fromkeys(tier) if w not in known]
        known.update(extra)
        extra_merges = learn_merges({w: apply_merges(w, merges) for w in extra})
        merges += extra_merges
        tokens += ["".join(m) for m in extra_merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(vocab)
