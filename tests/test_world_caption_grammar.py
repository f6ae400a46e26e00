"""The sticker world's captions are edited phrase by phrase through its caption grammar, which
reaches the engine only by the model folder's captioner.json."""

from __future__ import annotations

import json

import pytest
import torch

from engine.captioning import CaptionGrammar, load_grammar
from engine.concept_tokens import concepts_in_use
from engine.concepts import Concept
from engine.errors import ModelLoadError, PromptError
from engine.operations import EditRequest, plan_edit
from oneword.grammar import Position
from world.caption_grammar import WorldCaptionGrammar
from world.captioner import write_captioner_spec

WORLD = "a big red circle on the left and a small blue star on the right with grass background"
GRAMMAR = WorldCaptionGrammar()


@pytest.fixture(scope="module")
def mochi(tiny_model):
    return Concept("mochi", "object", torch.randn(2, tiny_model.text_width), 10,
                   tiny_model.source)


def plan(model, caption, action, concepts=(), **fields):
    with concepts_in_use(model, concepts):
        return plan_edit(model, caption, EditRequest(action, **fields),
                         {c.name: c for c in concepts}, grammar=GRAMMAR)


def test_world_captions_are_edited_phrase_by_phrase(tiny_model, mochi):
    replace = plan(tiny_model, WORLD, "replace", [mochi], subject="circle", concept="mochi")
    assert replace.target.startswith("a big <mochi> <mochi>_1 on the left and")
    assert replace.blend_source_words == ("red", "circle")
    assert replace.blend_target_words == ("<mochi>", "<mochi>_1")
    add = plan(tiny_model, WORLD, "add", [mochi], concept="mochi")
    assert "and a <mochi> <mochi>_1 in the center with grass background" in add.target
    assert plan(tiny_model, WORLD, "remove", subject="star").target == (
        "a big red circle on the left with grass background")
    assert plan(tiny_model, WORLD, "restyle", concept="pixel").target == WORLD + " in pixel style"


def test_the_one_of_two_the_user_names_is_the_phrase_edited():
    group = ("a small blue face on the left and a small red face on the right with grass "
             "background")
    target, replaced = GRAMMAR.with_replaced(group, "face", "<anna>", True, Position.RIGHT)
    assert target == ("a small blue face on the left and a small <anna> on the right with grass "
                      "background")
    assert replaced == ("red", "face")
    assert GRAMMAR.with_replaced(group, "face", "<anna>", True)[0].startswith("a small <anna> on")
    assert GRAMMAR.without(group, "face", Position.LEFT) == (
        "a small red face on the right with grass background")
    assert GRAMMAR.with_replaced(group, "face", "<anna>", True, Position.CENTER) is None


def test_a_full_picture_has_no_free_spot(tiny_model):
    full = ("a big red circle on the left and a small blue star in the center and a big green "
            "heart on the right with sky background")
    with pytest.raises(PromptError, match="no free spot"):
        plan(tiny_model, full, "add", concept="star")


def test_captions_outside_the_grammar_are_left_to_the_engine():
    assert GRAMMAR.with_added("a photo of a dog", "cat", None) is None
    assert GRAMMAR.with_replaced("a photo of a dog", "dog", "cat", False) is None
    assert GRAMMAR.without("a photo of a dog", "dog") is None


def test_the_model_folder_names_the_grammar(tmp_path):
    assert load_grammar(tmp_path) is None  # no captioner.json: word by word
    write_captioner_spec(tmp_path)
    assert isinstance(load_grammar(tmp_path), CaptionGrammar)
    assert isinstance(load_grammar(tmp_path), WorldCaptionGrammar)
    (tmp_path / "captioner.json").write_text(json.dumps({"factory": "x:y",
                                                         "grammar": "no.such.module:G"}))
    with pytest.raises(ModelLoadError, match="caption grammar"):
        load_grammar(tmp_path)
