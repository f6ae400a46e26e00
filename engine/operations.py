"""The four edits: add, replace, restyle, remove, each asked for by a typed `EditRequest`.

Each request turns the photo's caption into a source and a target prompt (see `plan_edit`) and
runs one prompt-to-prompt edit on the photo's inversion. A caption is edited word by word; a
model whose captions follow a grammar of their own names it in its folder (a `CaptionGrammar`,
engine/captioning.py), and edits rewrite those captions whole phrases at a time. The actions
and places are the shared contract's (oneword/grammar.py).

A photo's caption need not name what the user calls its subject ("replace dog with mochi" on
"a puppy on a sofa"): the user's word then joins the prompt the photo is inverted under
(`source_prompt`), and the edit goes where that word's attention finds something. Only a word
whose attention finds nothing in particular is refused, with advice (`NotInPhotoError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from engine.attention_maps import FUNCTION_WORDS, attention_grid
from engine.attention_places import (
    BANDS,
    DEFAULT_SIZE,
    Box,
    focus,
    free_place,
    others_measure,
    similar_words,
    subject_parts,
)
from engine.captioning import CaptionGrammar, load_grammar
from engine.concept_tokens import concepts_in_use, expand_prompt
from engine.concepts import Concept
from engine.config import EditSettings, InversionSettings
from engine.editing import EditOutput, PromptEdit, edit
from engine.errors import InversionError, NotInPhotoError, PromptError
from engine.faces import FaceFinder, PersonFinder, people_parts
from engine.full_size import at_photo_size, centre_square, framing_for
from engine.images import Framing
from engine.inversion import MODES, Inversion, InversionProgress, invert
from engine.model import DiffusionModel
from engine.prompt_alignment import token_spans
from engine.segmentation import Segmenter
from oneword.grammar import EditAction, Position
from oneword.jobs import ConceptKind

Captioner = Callable[[Image.Image], str]
_STYLE = re.compile(r" in [\w<>_-]+ style$")
_NAMED_BY_USER = " with a {}"  # how a subject the caption lacks joins the source prompt


@dataclass(frozen=True)
class EditRequest:
    """One edit, already understood: the engine reads no command text.

    add: put `concept` in (at `position`, if given); replace: `subject` becomes `concept`;
    restyle: repaint as `concept`; remove: take `subject` out. `concept` is a learned concept's
    name or a word the model knows; `subject` a word for something in the photo; for replace
    and remove, `position` says which of several things the word names is meant.
    """

    action: EditAction
    subject: str | None = None
    concept: str | None = None
    position: Position | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "action", EditAction(self.action))
        except ValueError:
            raise PromptError(f"unknown edit action {self.action!r}") from None
        try:
            if self.position is not None:
                object.__setattr__(self, "position", Position(self.position))
        except ValueError:
            raise PromptError(f"unknown position {self.position!r}") from None
        needs = {EditAction.ADD: ("concept",), EditAction.REPLACE: ("subject", "concept"),
                 EditAction.RESTYLE: ("concept",), EditAction.REMOVE: ("subject",)}[self.action]
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            raise PromptError(f"a '{self.action}' edit needs a {' and a '.join(missing)}")


def normalised(caption: str) -> str:
    """A caption as prompts use it: lowercase, single spaces."""
    return " ".join(caption.strip().lower().split())


def source_prompt(caption: str, request: EditRequest) -> str:
    """The prompt to invert a photo under for `request`: its caption, and the user's word for
    the subject when the caption does not name it ("a puppy on a sofa with a dog"), so the
    word's own attention can find what it names."""
    caption = normalised(caption)
    subject = request.subject
    if subject is None or subject in caption.split():
        return caption
    return caption + _NAMED_BY_USER.format(subject)


def _named_by_user(prompt: str, subject: str) -> bool:
    """Whether `subject` is in `prompt` only because `source_prompt` put it there."""
    tail = _NAMED_BY_USER.format(subject)
    return prompt.endswith(tail) and subject not in prompt.removesuffix(tail).split()


def plan_edit(model: DiffusionModel, caption: str, request: EditRequest,
              concepts: dict[str, Concept], settings: EditSettings = EditSettings(),
              grammar: CaptionGrammar | None = None, maps=None,
              others: list[Box] | None = None) -> PromptEdit:
    """Source and target prompts, and how to confine the change, for a request on a caption.

    `caption` is the prompt the photo was inverted under; `maps` (side, side, tokens) that
    prompt's cross-attention over the photo (`Inversion.maps`; None: not recorded), from which
    a subject the user named is checked and a free place for an add is found. `grammar` is the
    model's caption grammar, if it has one. `others` are the boxes (map pixels) of the people
    found in the photo (`engine.faces.PersonFinder`): an add confines the new person to a place
    as big as they are, beside them and clear of them, in place of the words' attention parts;
    a replace or remove at a position changes the one of them there (`_one_among`), whatever
    the word's attention says.

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
    caption = normalised(caption)
    value = _token_text(model, request.concept, concepts) if request.concept else None
    value_words = tuple(value.split()) if value else ()
    learned = request.concept in concepts
    threshold = settings.concept_blend_threshold if learned else None
    if request.action is EditAction.ADD:
        return _plan_add(model, caption, request.position, value, value_words, settings,
                         threshold, grammar, maps, others)
    if request.action is EditAction.RESTYLE:
        return PromptEdit(caption, _STYLE.sub("", caption) + f" in {value} style",
                          cross_replace=settings.restyle_cross_replace,
                          self_replace=settings.restyle_self_replace, self_everywhere=True,
                          neutral_start=settings.restyle_neutral_start)
    if learned:  # a replace's mask must also reach past the old thing's outline
        threshold = settings.concept_replace_blend_threshold
    subject = request.subject
    if subject not in caption.split():
        raise PromptError(f"'{subject}' is not in the edit's source prompt '{caption}'")
    # which of several ("the left man"): the edit is confined to that one of the word's things
    which = None
    if request.position is not None:
        which = (_one_among(others, request.position, maps.shape[0]) if others and maps is not None
                 else _one_of(model, caption, subject, request.position, maps))
    remove = dict(keep_outside=True, self_replace=settings.remove_self_replace,
                  cross_replace=settings.remove_cross_replace,
                  blend_growth=settings.remove_mask_growth, region=which)
    if grammar is not None and not _named_by_user(caption, subject):
        if request.action is EditAction.REPLACE:
            rewritten = grammar.with_replaced(caption, subject, value, learned,
                                              request.position)
            if rewritten is not None:
                target, replaced = rewritten
                return PromptEdit(caption, target, replaced, value_words, keep_outside=True,
                                  cross_replace=settings.concept_cross_replace if learned
                                  else None, blend_threshold=threshold, region=which)
        else:
            target = grammar.without(caption, subject, request.position)
            if target is not None:
                return PromptEdit(caption, target, (subject,), (), **remove)
    # Word by word. Other words whose attention lies where the subject's does ("puppy", when
    # the user said "dog") name the same thing: the edited branch stops drawing them there.
    alike = _alike(model, caption, subject, settings, maps)
    if request.action is EditAction.REPLACE:
        return PromptEdit(caption, _swap_word(caption, subject, value), (subject,), value_words,
                          reweight={w: 0.0 for w in alike}, keep_outside=True,
                          cross_replace=settings.concept_cross_replace if learned else None,
                          blend_threshold=threshold, region=which)
    # remove: turn the word's attention negative where it is
    return PromptEdit(caption, caption, (subject,), (subject,),
                      reweight={subject: -1.0, **{w: 0.0 for w in alike}}, **remove)


def _plan_add(model: DiffusionModel, caption: str, position: Position | None, value: str,
              value_words: tuple[str, ...], settings: EditSettings, threshold: float | None,
              grammar: CaptionGrammar | None, maps,
              others: list[Box] | None = None) -> PromptEdit:
    """add: the grammar's free place, else the caption "and a <value>" confined to the part of
    the photo its words leave free (`free_place`), on the side the user named if any, as big
    as the things its words find and in line with them (`subject_parts`): someone added to a
    group photo is the size of the others, not of a fixed square. With the people found in
    the photo (`others`), the grammar's place too is confined to such a box, in the band the
    grammar put the new thing in: a learned word's attention alone spreads over half the
    photo and its blend would redraw the others."""
    common = dict(blend_target_words=value_words, keep_outside=True,
                  cross_replace=settings.add_cross_replace, blend_threshold=threshold)
    target = grammar.with_added(caption, value, position) if grammar is not None else None
    if target is not None:
        placed = position or next((p for p in Position if f"a {value} {p.phrase}" in target),
                                  None)
        region = (_free_region(model, caption, maps, settings, placed, others)
                  if others and maps is not None else None)
        return PromptEdit(caption, target, region=region, **common)
    where = f" {position.phrase}" if position is not None else ""
    region = (_free_region(model, caption, maps, settings, position, others)
              if maps is not None else None)
    return PromptEdit(caption, f"{caption} and a {value}{where}", region=region, **common)


def _free_region(model: DiffusionModel, caption: str, maps, settings: EditSettings,
                 position: Position | None, others: list[Box] | None) -> np.ndarray:
    """The (side, side) place for a new thing: where the caption's words (and the people in
    `others`) are not, as big as the people, else the things the words find, and in line."""
    spans = token_spans(model.tokenizer, caption)
    things = [spans.positions(word) for word in sorted(set(caption.split()) - FUNCTION_WORDS)]
    taken = [p for positions in things for p in positions]
    parts = others or subject_parts(maps, things, settings.subject_min_focus)
    measure = others_measure(parts, maps.shape[0])
    size, level = measure if measure is not None else (DEFAULT_SIZE, None)
    return free_place(maps, taken, position, size, level, others or ())


def _one_of(model: DiffusionModel, caption: str, subject: str, position: Position,
            maps) -> np.ndarray:
    """A (side, side) mask in {0, 1} around the one thing `subject` names at `position`: of the
    parts of the photo the word's attention finds (`subject_parts`), the leftmost, rightmost or
    most central, its box grown by a quarter on each side so the new thing has room."""
    if maps is None:
        raise PromptError(f"I can't tell which {subject} is meant in this photo; try the edit "
                          f"without saying which")
    parts = subject_parts(maps, [token_spans(model.tokenizer, caption).positions(subject)], 0.0)
    side = maps.shape[0]
    if not parts:
        return np.ones((side, side), np.float32)  # the word finds nothing: the blend decides
    return _grown_box(_at(parts, position, side), side)


def _one_among(people: list[Box], position: Position, side: int) -> np.ndarray:
    """A (side, side) mask in {0, 1} around the one of the people found in the photo (their
    boxes, map pixels) at `position`: the leftmost, rightmost or most central, its box grown
    by a quarter on each side but not into anybody else's box."""
    chosen = _at(people, position, side)
    mask = _grown_box(chosen, side)
    for top, left, bottom, right in people:
        mask[top:bottom, left:right] = 0.0
    top, left, bottom, right = chosen
    mask[top:bottom, left:right] = 1.0
    return mask


def _at(boxes: list[Box], position: Position, side: int) -> Box:
    """The box whose centre is nearest the middle of `position`'s band."""
    low, high = BANDS[position]
    return min(boxes, key=lambda b: abs((b[1] + b[3]) / 2 / side - (low + high) / 2))


def _grown_box(box: Box, side: int) -> np.ndarray:
    """A (side, side) mask in {0, 1} of `box` grown by a quarter of its size on each side."""
    top, left, bottom, right = box
    grow_y, grow_x = max(1, (bottom - top) // 4), max(1, (right - left) // 4)
    mask = np.zeros((side, side), np.float32)
    mask[max(0, top - grow_y):bottom + grow_y, max(0, left - grow_x):right + grow_x] = 1.0
    return mask


def _alike(model: DiffusionModel, caption: str, subject: str, settings: EditSettings,
           maps) -> list[str]:
    """For a subject the user named and the caption did not: the caption's words for the same
    thing; NotInPhotoError when the subject's attention finds nothing in particular."""
    if maps is None or not _named_by_user(caption, subject):
        return []
    spans = token_spans(model.tokenizer, caption)
    mine = spans.positions(subject)
    if focus(maps, mine) < settings.subject_min_focus:
        raise NotInPhotoError(subject)
    head = caption.removesuffix(_NAMED_BY_USER.format(subject))
    others = {w: spans.positions(w) for w in set(head.split()) - FUNCTION_WORDS}
    return similar_words(maps, mine, {w: p for w, p in others.items() if p},
                         settings.subject_overlap)


def _token_text(model: DiffusionModel, value: str, concepts: dict[str, Concept]) -> str:
    if value in concepts:
        return expand_prompt(model, concepts[value].token)
    if not re.fullmatch(r"[a-z]+", value) or len(model.tokens(value)) != 3:  # start, word, end
        raise PromptError(f"'{value}' is neither a learned concept nor a word the model knows")
    return value


def _swap_word(caption: str, word: str, value: str) -> str:
    return " ".join(value if w == word else w for w in caption.split())


@dataclass
class EditOutcome:
    """What an edit produced: the edited image and a picture of the attention behind it.

    With the user's photo given (`Editor.run(photo=...)`), `image` is at the photo's own size
    and `mask` says where (H, W) in [0, 1] it may differ from the photo: nowhere else does it.
    """

    image: Image.Image
    maps: Image.Image
    result: EditOutput
    prompt_edit: PromptEdit
    mask: np.ndarray | None = None


def inversion_mode_for(request: EditRequest, concept_kind: str | None, mode: str,
                       learned_replace_mode: str) -> str:
    """The inversion mode an edit is made after: `learned_replace_mode` for a replace with a
    learned thing's word (`concept_kind` 'object'), `mode` for every other edit.

    After direct inversion the source branch is put back on the photo's trajectory at every
    step, which holds the replaced object's outline and colours so firmly that a learned word
    put in its place often comes out as a mix of the two; after plain DDIM inversion it draws
    itself more often. Bundled model, four learning seeds, 40 replaces each: the patterned
    object right in 60% after direct, 68% after ddim (its shape and pattern 80% / 88%), the
    character 52% / 57%. An add draws on an empty place, where the trajectory holds nothing
    to fight the word: there direct did as well or better (75% / 70%, 48% / 45%)."""
    if concept_kind == ConceptKind.OBJECT and request.action is EditAction.REPLACE:
        return learned_replace_mode
    return mode


class Editor:
    """Runs edits on photos with one model: inverts once per photo, edits many times.

    The model folder's caption grammar, if it names one, is loaded with the editor.
    """

    def __init__(self, model: DiffusionModel, captioner: Captioner | None = None,
                 inversion_settings: InversionSettings = InversionSettings(),
                 edit_settings: EditSettings = EditSettings(), mode: str = "null-text",
                 faces: FaceFinder | None = None, learned_replace_mode: str | None = None,
                 segmenter: Segmenter | None = None):
        for name, value in (("mode", mode),
                            ("learned_replace_mode", learned_replace_mode or mode)):
            if value not in MODES:
                raise InversionError(f"unknown inversion {name} {value!r}; use one of "
                                     f"{', '.join(MODES)}")
        self.model = model
        # the people in a group photo, for adding a person among them or swapping one of them
        self.people = PersonFinder(faces, segmenter)
        self.captioner = captioner
        self.inversion_settings = inversion_settings
        self.edit_settings = edit_settings
        self.mode = mode
        # the mode of a replace with a learned thing's word (`inversion_mode`)
        self.learned_replace_mode = learned_replace_mode or mode
        self.grammar = load_grammar(model.source)

    def _people_in(self, inversion: Inversion, request: EditRequest,
                   concepts: dict[str, Concept], photo: Image.Image | None) -> list[Box] | None:
        """For adding a person, or putting one in place of one of several ("replace the left
        man with anna"): the head and shoulders of the people the face detector and
        the segmenter find in the photo's centre square (the part the edit sees, at the
        photo's own resolution, where faces are easier to find than in the model's square),
        in its attention maps' pixels; else None (the words' attention finds them)."""
        concept = concepts.get(request.concept or "")
        wanted = request.action is EditAction.ADD or (request.action is EditAction.REPLACE
                                                      and request.position is not None)
        if (inversion.maps is None or not wanted or concept is None or concept.kind != "person"
                or (self.people.faces is None and self.people.segmenter is None)):
            return None
        square = (photo.convert("RGB").crop(centre_square(photo.size)) if photo is not None
                  else inversion.image)
        return people_parts(self.people, square, inversion.maps.shape[0]) or None

    def caption(self, image: Image.Image, caption: str | None = None) -> str:
        """The given caption, else the captioner's; without either the edit cannot be planned."""
        if caption and caption.strip():
            return normalised(caption)
        if self.captioner is None:
            raise PromptError("please tell me what the photo shows (a caption), e.g. "
                              "'a photo of a dog on a sofa'")
        return normalised(self.captioner(image))

    def source_prompt(self, image: Image.Image, request: EditRequest,
                      caption: str | None = None) -> str:
        """The prompt to invert `image` under for `request` (`source_prompt`)."""
        return source_prompt(self.caption(image, caption), request)

    @staticmethod
    def framing(image: Image.Image, request: EditRequest) -> Framing:
        """How `request` needs `image` put into the model's square (`prepare`'s `framing`):
        the whole frame for a restyle of a photo that is not square, else the centre square
        (engine/full_size.py)."""
        return framing_for(image.size, request.action is EditAction.RESTYLE)

    def inversion_mode(self, request: EditRequest, concept_kind: str | None = None) -> str:
        """The inversion mode `request` is edited after (`prepare`'s `mode`, see
        `inversion_mode_for`); `concept_kind` is the kind of the learned concept the request
        names (None: a word the model knows)."""
        return inversion_mode_for(request, concept_kind, self.mode, self.learned_replace_mode)

    def prepare(self, image: Image.Image, caption: str | None = None,
                progress: InversionProgress | None = None,
                should_stop: Callable[[], bool] | None = None,
                framing: Framing = Framing.CENTRE, mode: str | None = None) -> Inversion:
        """Invert a photo under its caption with `mode` (default: the editor's `mode`; an
        edit's own is `inversion_mode`); reuse the result for every edit of it that needs the
        same mode and `framing` (`Editor.framing`)."""
        return invert(self.model, image, self.caption(image, caption), mode or self.mode,
                      self.inversion_settings, progress, should_stop, framing)

    def run(self, inversion: Inversion, request: EditRequest,
            concepts: Iterable[Concept] = (), progress: Callable[[int, int], None] | None = None,
            seed: int | None = None, photo: Image.Image | None = None) -> EditOutcome:
        """Carry out one edit on an inverted photo with the given learned concepts; with the
        `photo` itself, the result comes back at its size (engine/full_size.py), which needs
        the photo inverted with the framing the edit asks for (`Editor.framing`)."""
        if photo is not None and inversion.framing is not self.framing(photo, request):
            raise InversionError(
                f"a {request.action} of a {photo.width}x{photo.height} photo needs it inverted "
                f"with framing '{self.framing(photo, request)}', not '{inversion.framing}'")
        by_name = {c.name: c for c in concepts}
        settings = self.edit_settings if seed is None else replace(self.edit_settings, seed=seed)
        with concepts_in_use(self.model, by_name.values()):  # this edit's words, then none
            prompt_edit = plan_edit(self.model, inversion.prompt, request, by_name,
                                    self.edit_settings, self.grammar, inversion.maps,
                                    self._people_in(inversion, request, by_name, photo))
            result = edit(self.model, inversion, prompt_edit, settings, progress)
        maps = attention_grid(result.image, result.maps[1], result.target_tokens)
        if photo is None:
            return EditOutcome(result.image, maps, result, prompt_edit, result.pixel_mask)
        image, mask = at_photo_size(photo, result.image,
                                    result.mask if prompt_edit.keep_outside else None,
                                    inversion.framing)
        return EditOutcome(image, maps, result, prompt_edit, mask)
