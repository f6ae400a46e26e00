"""The bot-worker contract: the edit grammar, the concept-name rule and job payloads as JSON."""

from __future__ import annotations

import json

import pytest

from oneword import jobs
from oneword.grammar import (
    CommandError,
    EditAction,
    EditCommand,
    Position,
    command_addressee,
    parse_edit,
)
from oneword.names import InvalidName, concept_name


@pytest.mark.parametrize("text, expected", [
    ("add mochi", EditCommand(EditAction.ADD, concept="mochi")),
    ("/add@OneWordBot <Mochi> on the left",
     EditCommand(EditAction.ADD, concept="mochi", position=Position.LEFT)),
    ("add mochi in the middle", EditCommand(EditAction.ADD, concept="mochi",
                                            position=Position.CENTER)),
    ("Replace the dog with Mochi | a photo of a dog on a sofa",
     EditCommand(EditAction.REPLACE, concept="mochi", subject="dog",
                 caption="a photo of a dog on a sofa")),
    ("replace circle with <mochi>", EditCommand(EditAction.REPLACE, "mochi", "circle")),
    ("restyle as inkwash", EditCommand(EditAction.RESTYLE, concept="inkwash")),
    ("/restyle in pixel style", EditCommand(EditAction.RESTYLE, concept="pixel")),
    ("remove the man", EditCommand(EditAction.REMOVE, subject="man")),
    # which of several: a place after the word, or before it
    ("replace the man on the left with anna",
     EditCommand(EditAction.REPLACE, concept="anna", subject="man", position=Position.LEFT)),
    ("/replace the right woman with anna | three friends",
     EditCommand(EditAction.REPLACE, concept="anna", subject="woman", position=Position.RIGHT,
                 caption="three friends")),
    ("remove the man in the middle",
     EditCommand(EditAction.REMOVE, subject="man", position=Position.CENTER)),
])
def test_commands_are_read_once_into_typed_commands(text, expected):
    assert parse_edit(text) == expected


def test_canonical_text_reads_back_as_the_same_command():
    for text in ("add mochi on the right", "replace dog with mochi", "restyle as inkwash",
                 "remove man", "replace man on the left with anna", "remove dog in the center"):
        command = parse_edit(text)
        assert command is not None and command.text == text and parse_edit(command.text) == command


@pytest.mark.parametrize("text", ["", "hello there", "paint it black", "addition of mochi"])
def test_other_text_is_not_a_command(text):
    assert parse_edit(text) is None


@pytest.mark.parametrize("text, reason", [
    ("replace dog", "Replace what with what"),
    ("replace big dog with mochi", "one word to replace"),
    ("add", "Add what"),
    ("add mo/chi", "can't be a name"),
    ("add 猫咪", "letters a-z"),
    ("add mochi upstairs", "on the left"),
    ("remove the big man", "one word to remove"),
    ("replace the man on the left and right with anna", "one word to replace"),
    ("replace on the left with anna", "one word to replace"),
    ("remove the left", "one word to remove"),
    ("restyle as", "Restyle as what"),
    ("remove mochi | " + "x" * 301, "too long"),
])
def test_unreadable_commands_say_why(text, reason):
    with pytest.raises(CommandError, match=reason):
        parse_edit(text)


def test_slash_commands_name_their_bot():
    assert command_addressee("/replace@Other_bot x") == ("replace", "Other_bot")
    assert command_addressee("/sticker") == ("sticker", None)
    assert command_addressee("replace dog with mochi") is None


@pytest.mark.parametrize("typed, name", [("Mochi", "mochi"), (" <my_mug> ", "my_mug"),
                                         ("cat-2", "cat-2"), ("x" * 32, "x" * 32)])
def test_concept_names_are_lowercase_ascii_words(typed, name):
    assert concept_name(typed) == name


@pytest.mark.parametrize("typed", ["", "  ", "猫咪", "café", "two words", "../x", "x" * 33, 7])
def test_other_names_are_refused_with_the_rule(typed):
    with pytest.raises(InvalidName):
        concept_name(typed)


def test_payloads_survive_json_with_the_typed_command():
    payload = jobs.EditPayload("photos/a.png", "key", parse_edit("add mochi on the left | a cat"),
                               concept_ids=[3], seed=7)
    stored = json.loads(json.dumps(jobs.to_json(payload)))
    assert stored["command"]["action"] == "add" and stored["command"]["position"] == "left"
    assert jobs.from_json(jobs.EditPayload, stored) == payload
    older = {"photo": "p", "photo_key": "k", "command": "replace dog with mochi", "later": 1}
    assert jobs.from_json(jobs.EditPayload, older).command == EditCommand(
        EditAction.REPLACE, concept="mochi", subject="dog")


def test_every_kind_has_one_lane():
    assert {kind for lane in jobs.Lane for kind in lane.kinds} == set(jobs.JobKind)
    assert jobs.Lane.of("learn") is jobs.Lane.LONG and jobs.Lane.of(jobs.JobKind.EDIT).kinds == (
        jobs.JobKind.EDIT, jobs.JobKind.STICKER, jobs.JobKind.PACK)
