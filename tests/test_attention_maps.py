"""The "Why?" picture: one panel per word the user wrote, in a grid narrow enough for a phone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.attention_maps import FUNCTION_WORDS, attention_grid, prompt_words
from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept

CELL = 256


@pytest.fixture(scope="module")
def mochi(tiny_model):
    return Concept("mochi", "object", torch.randn(3, tiny_model.text_width), 10,
                   tiny_model.source)


def tokens_of(model, concept, written: str) -> list[str]:
    """The tokens the engine reads for a prompt a person wrote with `<mochi>` in it."""
    with concepts_in_use(model, [concept]):
        return model.tokens(expand_prompt(model, written))


def panel_grid(picture: Image.Image) -> list[int]:
    """How many panels each row of the picture holds. Panels are pictures pasted at multiples
    of the cell size; labels are centred text on white that keeps a margin, so a panel is
    what is not white one pixel inside a cell's left edge."""
    rgb = np.asarray(picture.convert("RGB")).astype(int)
    painted = rgb.min(-1) < 235
    rows, inside = [], False
    for y in range(picture.height):
        if painted[y, 1] and not inside:
            rows.append(y + CELL // 2)
        inside = bool(painted[y, 1])
    return [sum(bool(painted[y, x + 1]) for x in range(0, picture.width, CELL)) for y in rows]


def test_a_learned_word_and_a_word_in_pieces_are_one_word_each(tiny_model, mochi):
    tokens = tokens_of(tiny_model, mochi, "a photo of a <mochi> on a sofa")
    assert tokens.count("<mochi>") == 1 and "<mochi>_2" in tokens and "s" in tokens
    words = prompt_words(tokens)
    assert [w.text for w in words] == ["a", "photo", "of", "a", "mochi", "on", "a", "sofa"]
    mochi_word = words[4]
    assert [tokens[i] for i in mochi_word.positions] == ["<mochi>", "<mochi>_1", "<mochi>_2"]
    twice = prompt_words(tokens_of(tiny_model, mochi, "a <mochi> and a <mochi>"))
    assert [w.text for w in twice] == ["a", "mochi", "and", "a", "mochi"]
    assert all(len(w.positions) == 3 for w in twice if w.text == "mochi")


@pytest.mark.parametrize("written", [
    "a photo of a mochi on a sofa",
    "a big mochi on the left and a small blue star on the right with grass background",
    "a mochi",
])
def test_one_panel_per_written_word_in_a_phone_sized_grid(tiny_model, mochi, written):
    tokens = tokens_of(tiny_model, mochi, written.replace("mochi", "<mochi>"))
    maps = torch.rand(8, 8, tiny_model.max_tokens)
    photo = Image.new("RGB", (32, 32), (30, 110, 210))
    picture = attention_grid(photo, maps, tokens, cell=CELL)
    user_words = [w for w in written.split() if w not in FUNCTION_WORDS]
    rows = panel_grid(picture)
    assert sum(rows) == 1 + len(user_words)  # the result, then one panel per word
    assert max(rows) <= 3 and all(r == max(rows) for r in rows[:-1])
    assert picture.width == CELL * max(rows) <= 3 * CELL
    assert 0.5 <= picture.width / picture.height <= 2.0, picture.size  # no long strip


def test_a_bad_grid_is_refused(tiny_model, mochi):
    tokens = tokens_of(tiny_model, mochi, "a <mochi>")
    with pytest.raises(ValueError, match="column"):
        attention_grid(Image.new("RGB", (32, 32)), torch.rand(8, 8, 32), tokens, columns=0)
