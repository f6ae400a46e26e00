"""Commands -> prompt edits -> edited images, with learned concepts, on a tiny model."""

from __future__ import annotations

import random

import pytest
import torch

from engine.concepts import Concept
from engine.config import InversionSettings
from engine.errors import PromptError
from engine.operations import Command, Editor, parse_command, plan_edit
from world.render import render
from world.scene import random_scene

WORLD = "a big red circle on the left and a small blue star on the right with grass background"


@pytest.mark.parametrize("text, expected", [
    ("add mochi", Command("add", value="mochi")),
    ("/add@OneWordBot <Mochi> on the left", Command("add", value="mochi", position="left")),
    ("replace the dog with mochi", Command("replace", subject="dog", value="mochi")),
    ("restyle as inkwash", Command("restyle", value="inkwash")),
    ("/restyle in pixel style", Command("restyle", value="pixel")),
    ("remove the man", Command("remove", subject="man")),
])
def test_commands_are_read(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["", "paint it black", "replace dog", "remove", "add"])
def test_unreadable_commands_explain_the_syntax(text):
    with pytest.raises(PromptError, match="replace <word> with <name>"):
        parse_command(text)


@pytest.fixture(scope="module")
def mochi(tiny_model):
    return Concept("mochi", "object", torch.randn(2, tiny_model.text_width), 10,
                   tiny_model.source)


def plan(model, caption, text, concepts=()):
    from engine.concept_tokens import install_concepts

    install_concepts(model, concepts)
    return plan_edit(model, caption, parse_command(text), {c.name: c for c in concepts})


def test_world_captions_are_edited_phrase_by_phrase(tiny_model, mochi):
    replace = plan(tiny_model, WORLD, "replace circle with mochi", [mochi])
    assert replace.target.startswith("a big <mochi> <mochi>_1 on the left and")
    assert replace.blend_source_words == ("red", "circle")
    assert replace.blend_target_words == ("<mochi>", "<mochi>_1")
    add = plan(tiny_model, WORLD, "add mochi", [mochi])
    assert "and a <mochi> <mochi>_1 in the center with grass background" in add.target
    assert plan(tiny_model, WORLD, "remove star").target == (
        "a big red circle on the left with grass background")
    assert plan(tiny_model, WORLD, "restyle as pixel").target == WORLD + " in pixel style"


def test_free_form_captions_are_edited_word_by_word(tiny_model):
    caption = "a photo of a dog sitting"
    assert plan(tiny_model, caption, "replace dog with cat").target == "a photo of a cat sitting"
    removal = plan(tiny_model, caption, "remove dog")
    assert removal.reweight == {"dog": -1.0} and removal.target == caption


def test_edits_that_cannot_be_planned_say_why(tiny_model):
    with pytest.raises(PromptError, match="'horse' is not in the photo's caption"):
        plan(tiny_model, WORLD, "replace horse with star")
    with pytest.raises(PromptError, match="learn it first|teach it to me first"):
        plan(tiny_model, WORLD, "add zorblax")
    full = ("a big red circle on the left and a small blue star in the center and a big green "
            "heart on the right with sky background")
    with pytest.raises(PromptError, match="no free spot"):
        plan(tiny_model, full, "add star")


def test_editor_runs_a_command_with_a_concept(tiny_model, mochi):
    editor = Editor(tiny_model, inversion_settings=InversionSettings(steps=6, inner_steps=2))
    photo = render(random_scene(random.Random(2)), size=32).image
    with pytest.raises(PromptError, match="caption"):
        editor.prepare(photo)  # no caption and no captioner
    inversion = editor.prepare(photo, WORLD)
    outcome = editor.replace(inversion, "circle", mochi)
    assert outcome.image.size == (32, 32)
    assert outcome.maps.width > outcome.maps.height  # photo + one panel per word
    assert "<mochi>" in outcome.result.target_tokens
    assert outcome.result.mask is not None
