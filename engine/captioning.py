"""What a model may tell the engine about a picture: a caption, where a photo's subject is, and
how its captions are edited.

A model folder may ship a captioner: a program that reads a picture of the model's own world.
The engine never imports one; the folder names it in `captioner.json`, e.g.

    {"factory": "some.package.module:function", "folder": "captioner",
     "grammar": "some.package.module:Grammar"}

and `load_captioner` imports the module with importlib and calls `function(model_folder /
folder)`, which returns an object with the `Captioner` methods. A model whose captions follow a
grammar of their own names its `CaptionGrammar` too (`load_grammar`), so edits rewrite such
captions whole phrases at a time; without one the engine edits a caption word by word. Real
Stable Diffusion folders ship none: there a captioning model named in the settings words the
photo (engine/photo_captioner.py), or the user does, and learning falls back to model-agnostic
captions and masks (see engine/textual_inversion.py).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from engine.errors import ModelLoadError
from oneword.grammar import Position

CAPTIONER_FILE = "captioner.json"
PLACEHOLDER = "{}"  # where a subject caption puts the new word


@dataclass(frozen=True)
class Subject:
    """A photo's caption with the new word in its subject's place, and where the subject is.

    `caption` holds PLACEHOLDER once, e.g. "a photo of a {} on a sofa", or "a dog on a sofa in
    {} style" for a style. `mask` is
    (H, W) in [0, 1] at the photo's resolution, 1 on the subject; None means the whole picture.
    `words` describe the subject itself as fully as the model's words can, e.g. "small fluffy
    grey cat": learning starts the new word there (None: no such words). `contexts` are more
    captions with PLACEHOLDER once that put the subject where edits will put the word: worded
    as the model's grammar words an add, beside other things. Learning may pair the photo with
    them too (`ConceptSettings.context_share`), so the word does not lean on its photos' exact
    wording: a word learned only under "a big {} ..." came out in none of 8 drawings under
    "a {} ..." with its size word left out.
    """

    caption: str
    mask: np.ndarray | None = None
    words: str | None = None
    contexts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for text in (self.caption, *self.contexts):
            if text.count(PLACEHOLDER) != 1:
                raise ValueError(f"a subject caption needs one {PLACEHOLDER!r}: {text!r}")


@runtime_checkable
class Captioner(Protocol):
    """What a model's captioner supplies."""

    def caption(self, image: Image.Image) -> str:
        """The picture's caption in the model's own words (an edit's source prompt)."""

    def subject(self, image: Image.Image, kind: str) -> Subject | None:
        """The caption of a sample photo of a concept of `kind` ("object", "person", "style")
        with the new word in the subject's place, the subject's mask and its own words; None
        when the photo shows no subject the captioner can find."""


@runtime_checkable
class CaptionGrammar(Protocol):
    """How to edit captions written in a model's own grammar, whole phrases at a time.

    Each method returns None for a caption the grammar does not cover; the engine then edits
    it word by word. `words` are the new thing's prompt words (a learned word's tokens).
    """

    def with_added(self, caption: str, words: str, position: Position | None) -> str | None:
        """The caption with the new thing put at a free place (at `position`, if given); raise
        PromptError when the grammar's picture has no free place left there."""

    def with_replaced(self, caption: str, subject: str, words: str, learned: bool,
                      position: Position | None = None) -> tuple[str, tuple[str, ...]] | None:
        """The caption with the phrase of `subject` (the one at `position`, when the user
        named one: "the left man") now about the new thing, and the source words the
        new thing replaces (the edit is confined to them). `learned`: the new thing is a
        learned word, which brings its own look (the phrase's colour words go)."""

    def without(self, caption: str, subject: str, position: Position | None = None
                ) -> str | None:
        """The caption without the phrase of `subject` (the one at `position`, if given)."""


def _spec(source: str | Path | None) -> tuple[Path, dict] | None:
    """The model folder and its captioner.json, or None when it has none."""
    folder = Path(str(source)) if source else None
    spec_file = folder / CAPTIONER_FILE if folder is not None else None
    if spec_file is None or not spec_file.is_file():
        return None
    try:
        return folder, json.loads(spec_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"the model's {CAPTIONER_FILE} cannot be read: {exc}") from exc


def _imported(reference: str) -> object:
    """The object a "package.module:attribute" reference names."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_grammar(source: str | Path | None) -> CaptionGrammar | None:
    """The caption grammar a model folder names in captioner.json, else None (captions are
    edited word by word). One that cannot be loaded raises ModelLoadError."""
    spec = _spec(source)
    if spec is None or "grammar" not in spec[1]:
        return None
    try:
        grammar = _imported(spec[1]["grammar"])()
    except (ValueError, AttributeError, ImportError, TypeError) as exc:
        raise ModelLoadError(f"the model's caption grammar cannot be loaded: {exc}") from exc
    if not isinstance(grammar, CaptionGrammar):
        raise ModelLoadError(f"{spec[1]['grammar']} did not give a caption grammar")
    return grammar


def load_captioner(source: str | Path | None) -> Captioner | None:
    """The captioner a model folder names in captioner.json, else None (a hub id, a real SD
    folder). A folder that names one that cannot be loaded raises ModelLoadError."""
    spec = _spec(source)
    if spec is None:
        return None
    folder, fields = spec
    try:
        captioner = _imported(fields["factory"])(folder / fields.get("folder", "."))
    except (OSError, ValueError, KeyError, AttributeError, ImportError, TypeError) as exc:
        raise ModelLoadError(
            f"the model's captioner ({folder / CAPTIONER_FILE}) cannot be loaded: {exc}") from exc
    if not isinstance(captioner, Captioner):
        raise ModelLoadError(f"{fields['factory']} did not give a captioner")
    return captioner
