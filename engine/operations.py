"""The four edits: add, replace, restyle, remove, each asked for by a typed `EditRequest`.

Each request turns the photo's caption into a source and a target prompt (see `plan_edit`) and
runs one prompt-to-prompt edit on the photo's inversion. Captions in the sticker world's grammar
("a big red circle on the left with grass background") are edited phrase by phrase; any other
caption (a real photo's) word by word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from PIL import Image

from engine.attention_maps import attention_grid
from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept
from engine.config import EditSettings, InversionSettings
from engine.editing import EditOutput, PromptEdit, edit
from engine.errors import PromptError
from engine.inversion import Inversion, InversionProgress, invert
from engine.model import DiffusionModel

Captioner = Callable[[Image.Image], str]
Action = Literal["add", "replace", "restyle", "remove"]
Place = Literal["left", "center", "right"]
_PLACES: dict[str, str] = {"left": "on the left", "right": "on the right",
                           "center": "in the center"}
_PHRASE = re.compile(r"a (?:(?:small|big) )?(?:[\w<>_-]+ )?(?P<kind>[\w<>_-]+) "
                     r"(?P<where>on the left|in the center|on the right)")
_STYLE = re.compile(r" in [\w<>_-]+ style$")


@dataclass(frozen=True)
class EditRequest:
    """One edit, already understood: the engine reads no command text.

    add: put `concept` in (at `position`, if given); replace: `subject` becomes `concept`;
    restyle: repaint as `concept`; remove: take `subject` out. `concept` is a learned concept's
    name or a word the model knows; `subject` a word of the photo's caption.
    """

    action: Action
    subject: str | None = None
    concept: str | None = None
    position: Place | None = None

    def __post_init__(self) -> None:
        needs = {"add": ("concept",), "replace": ("subject", "concept"),
                 "restyle": ("concept",), "remove": ("subject",)}.get(self.action)
        if needs is None:
            raise PromptError(f"unknown edit action {self.action!r}")
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            raise PromptError(f"a '{self.action}' edit needs a {' and a '.join(missing)}")
        if self.position is not None and self.position not in _PLACES:
            raise PromptError(f"unknown position {self.position!r}")


def require_subject(caption: str, request: EditRequest) -> None:
    """Raise :class:`PromptError` when the request replaces or removes something the caption
    does not mention. Cheap: callers check before the slow inversion."""
    caption = " ".join(caption.strip().lower().split())
    if request.subject is not None and request.subject not in caption.split():
        raise PromptError(f"'{request.subject}' is not in the photo's caption '{caption}'; "
                          "name something the caption mentions")


def plan_edit(model: DiffusionModel, caption: str, request: EditRequest,
              concepts: dict[str, Concept],
              settings: EditSettings = EditSettings()) -> PromptEdit:
    """Source and target prompts, and how to confine the change, for a request on a caption.

    Each edit keeps what its name promises to keep. add, replace and remove are confined by
    LocalBlend to the edited words' attention and keep the photo's own pixels elsewhere. add
    puts the new thing at a place the caption leaves free, the other words holding the
    source's attention only early on, as held longer they keep that place empty. A learned
    word that replaces one takes the old word's attention only early on, so it draws its own
    shape, and a learned word's mask (add, replace) reaches further, as its shape is not the
    old object's. remove also drops the source's self-attention, which would redraw the
    object's shape, and grows its mask past the object's rim, which would come back as specks
    of its colour. restyle changes every pixel: no blend; the source's attention, at every
    layer, holds the layout in the first steps only, as held longer it also keeps the photo's
    tint, and the restyled branch starts from the inverted noise without its mean tint.
    """
    caption = " ".join(caption.strip().lower().split())
    value = _token_text(model, request.concept, concepts) if request.concept else None
    value_words = tuple(value.split()) if value else ()
    learned = request.concept in concepts
    threshold = settings.concept_blend_threshold if learned else None
    if request.action == "add":
        return PromptEdit(caption, _with_added(caption, value, request.position),
                          blend_target_words=value_words, keep_outside=True,
                          cross_replace=settings.add_cross_replace, blend_threshold=threshold)
    if request.action == "restyle":
        return PromptEdit(caption, _STYLE.sub("", caption) + f" in {value} style",
                          cross_replace=settings.restyle_cross_replace,
                          self_replace=settings.restyle_self_replace, self_everywhere=True,
                          neutral_start=settings.restyle_neutral_start)
    require_subject(caption, request)
    subject = request.subject
    phrase = _phrase_of(caption, subject)
    if request.action == "replace":
        schedule = settings.concept_cross_replace if learned else None
        if phrase is None:
            return PromptEdit(caption, _swap_word(caption, subject, value), (subject,), value_words,
                              keep_outside=True, cross_replace=schedule, blend_threshold=threshold)
        new_phrase = _phrase_with_kind(phrase, value, drop_colour=learned)
        replaced = tuple(w for w in phrase.split() if w not in new_phrase.split())
        return PromptEdit(caption, caption.replace(phrase, new_phrase, 1), replaced, value_words,
                          keep_outside=True, cross_replace=schedule, blend_threshold=threshold)
    if phrase is None:  # a free-form caption: turn the word's attention negative where it is
        return PromptEdit(caption, caption, (subject,), (subject,), reweight={subject: -1.0},
                          keep_outside=True, self_replace=settings.remove_self_replace,
                          cross_replace=settings.remove_cross_replace,
                          blend_growth=settings.remove_mask_growth)
    return PromptEdit(caption, _without_phrase(caption, phrase), (subject,), (),
                      keep_outside=True, self_replace=settings.remove_self_replace,
                      cross_replace=settings.remove_cross_replace,
                      blend_growth=settings.remove_mask_growth)


def _token_text(model: DiffusionModel, value: str, concepts: dict[str, Concept]) -> str:
    if value in concepts:
        return expand_prompt(model, concepts[value].token)
    if not re.fullmatch(r"[a-z]+", value) or len(model.tokens(value)) != 3:  # start, word, end
        raise PromptError(f"'{value}' is neither a learned concept nor a word the model knows")
    return value


def _phrase_of(caption: str, kind: str) -> str | None:
    return next((m.group(0) for m in _PHRASE.finditer(caption) if m.group("kind") == kind), None)


def _phrase_with_kind(phrase: str, value: str, drop_colour: bool) -> str:
    words = phrase.split()
    where = " ".join(words[-3:])
    head = words[1:-4]  # size and colour, if any
    if drop_colour:
        head = [w for w in head if w in ("small", "big")]
    return " ".join(["a", *head, value, where])


def _swap_word(caption: str, word: str, value: str) -> str:
    return " ".join(value if w == word else w for w in caption.split())


def _without_phrase(caption: str, phrase: str) -> str:
    for joined in (f"{phrase} and ", f" and {phrase}", phrase):
        if joined in caption:
            rest = caption.replace(joined, "", 1).strip()
            return rest if not rest.startswith("with ") else f"a picture {rest}"
    return caption


def _with_added(caption: str, value: str, position: str | None) -> str:
    taken = {m.group("where") for m in _PHRASE.finditer(caption)}
    if " with " in caption and taken:  # the world's grammar: put it on a free spot
        order = [position] if position else ["right", "left", "center"]
        free = [_PLACES[p] for p in order if _PLACES[p] not in taken]
        if not free:
            raise PromptError("there is no free spot in this picture"
                              + (f" on the {position}" if position else ""))
        head, tail = caption.split(" with ", 1)
        return f"{head} and a {value} {free[0]} with {tail}"
    where = f" {_PLACES[position]}" if position else ""
    return f"{caption} and a {value}{where}"


@dataclass
class EditOutcome:
    """What an edit produced: the edited image and a picture of the attention behind it."""

    image: Image.Image
    maps: Image.Image
    result: EditOutput
    prompt_edit: PromptEdit


class Editor:
    """Runs edits on photos with one model: inverts once per photo, edits many times."""

    def __init__(self, model: DiffusionModel, captioner: Captioner | None = None,
                 inversion_settings: InversionSettings = InversionSettings(),
                 edit_settings: EditSettings = EditSettings(), mode: str = "null-text"):
        self.model = model
        self.captioner = captioner
        self.inversion_settings = inversion_settings
        self.edit_settings = edit_settings
        self.mode = mode

    def caption(self, image: Image.Image, caption: str | None = None) -> str:
        """The given caption, else the captioner's; without either the edit cannot be planned."""
        if caption and caption.strip():
            return " ".join(caption.lower().split())
        if self.captioner is None:
            raise PromptError("please tell me what the photo shows (a caption), e.g. "
                              "'a photo of a dog on a sofa'")
        return self.captioner(image)

    def prepare(self, image: Image.Image, caption: str | None = None,
                progress: InversionProgress | None = None,
                should_stop: Callable[[], bool] | None = None) -> Inversion:
        """Invert a photo under its caption; reuse the result for every edit of it."""
        return invert(self.model, image, self.caption(image, caption), self.mode,
                      self.inversion_settings, progress, should_stop)

    def run(self, inversion: Inversion, request: EditRequest,
            concepts: Iterable[Concept] = (), progress: Callable[[int, int], None] | None = None,
            seed: int | None = None) -> EditOutcome:
        """Carry out one edit on an inverted photo with the given learned concepts."""
        by_name = {c.name: c for c in concepts}
        settings = self.edit_settings if seed is None else replace(self.edit_settings, seed=seed)
        with concepts_in_use(self.model, by_name.values()):  # this edit's words, then none
            prompt_edit = plan_edit(self.model, inversion.prompt, request, by_name,
                                    self.edit_settings)
            result = edit(self.model, inversion, prompt_edit, settings, progress)
        maps = attention_grid(result.image, result.maps[1], result.target_tokens)
        return EditOutcome(result.image, maps, result, prompt_edit)
