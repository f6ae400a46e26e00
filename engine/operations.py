"""The edits the bot offers, as one-line commands: add, replace, restyle, remove.

Each command turns the photo's caption into a source and a target prompt (see `plan_edit`) and
runs one prompt-to-prompt edit on the photo's inversion. Captions in the sticker world's grammar
("a big red circle on the left with grass background") are edited phrase by phrase; any other
caption (a real photo's) word by word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from PIL import Image

from engine.attention_maps import attention_grid
from engine.concept_tokens import expand_prompt, install_concepts
from engine.concepts import Concept
from engine.config import EditSettings, InversionSettings
from engine.editing import EditResult, PromptEdit, edit
from engine.errors import PromptError
from engine.inversion import Inversion, InversionProgress, invert
from engine.model import DiffusionModel

Captioner = Callable[[Image.Image], str]
ACTIONS = ("add", "replace", "restyle", "remove")
USAGE = ("Commands: 'add <name>', 'replace <word> with <name>', 'restyle as <name>', "
         "'remove <word>'.")
_POSITIONS = {"left": "on the left", "right": "on the right", "center": "in the center"}
_PHRASE = re.compile(r"a (?:(?:small|big) )?(?:[\w<>_-]+ )?(?P<kind>[\w<>_-]+) "
                     r"(?P<where>on the left|in the center|on the right)")
_STYLE = re.compile(r" in [\w<>_-]+ style$")


@dataclass(frozen=True)
class Command:
    """A parsed edit command."""

    action: str
    subject: str | None = None  # the word to replace or remove
    value: str | None = None  # the concept or word to add, put in, or restyle as
    position: str | None = None  # add: left / right / center


def parse_command(text: str) -> Command:
    """Read 'add mochi [on the left]', 'replace dog with mochi', 'restyle as inkwash',
    'remove the man' (a leading '/' and '@botname' are ignored)."""
    words = re.sub(r"^/(\w+)(@\w+)?", r"\1", text.strip()).replace("<", "").replace(">", "")
    words = words.lower().split()
    if not words or words[0] not in ACTIONS:
        raise PromptError(f"I don't know that command. {USAGE}")
    action, rest = words[0], [w for w in words[1:] if w not in ("the", "a", "an")]
    if action == "add" and rest:
        position = next((p for p in _POSITIONS if p in rest[1:]), None)
        return Command("add", value=rest[0], position=position)
    if action == "replace" and "with" in rest:
        i = rest.index("with")
        if i == 1 and len(rest) == 3:
            return Command("replace", subject=rest[0], value=rest[2])
    if action == "restyle":
        rest = [w for w in rest if w not in ("as", "in", "style")]
        if len(rest) == 1:
            return Command("restyle", value=rest[0])
    if action == "remove" and len(rest) == 1:
        return Command("remove", subject=rest[0])
    raise PromptError(f"I couldn't read '{text.strip()}'. {USAGE}")


def plan_edit(model: DiffusionModel, caption: str, command: Command,
              concepts: dict[str, Concept]) -> PromptEdit:
    """Source and target prompts (and where to confine the change) for a command on a caption."""
    caption = " ".join(caption.strip().lower().split())
    value = _token_text(model, command.value, concepts) if command.value else None
    value_words = tuple(value.split()) if value else ()
    if command.action == "add":
        return PromptEdit(caption, _with_added(caption, value, command.position),
                          blend_target_words=value_words)
    if command.action == "restyle":
        return PromptEdit(caption, _STYLE.sub("", caption) + f" in {value} style")
    subject = command.subject
    if subject not in caption.split():
        raise PromptError(f"'{subject}' is not in the photo's caption '{caption}'; "
                          "name something the caption mentions")
    phrase = _phrase_of(caption, subject)
    if command.action == "replace":
        if phrase is None:
            return PromptEdit(caption, _swap_word(caption, subject, value), (subject,), value_words)
        new_phrase = _phrase_with_kind(phrase, value, drop_colour=command.value in concepts)
        replaced = tuple(w for w in phrase.split() if w not in new_phrase.split())
        return PromptEdit(caption, caption.replace(phrase, new_phrase, 1), replaced, value_words)
    if phrase is None:  # a free-form caption: turn the word's attention negative where it is
        return PromptEdit(caption, caption, (subject,), (subject,), reweight={subject: -1.0})
    return PromptEdit(caption, _without_phrase(caption, phrase), (subject,), ())


def _token_text(model: DiffusionModel, value: str, concepts: dict[str, Concept]) -> str:
    if value in concepts:
        return expand_prompt(model, concepts[value].token)
    if not re.fullmatch(r"[a-z]+", value) or len(model.tokens(value)) != 3:  # start, word, end
        raise PromptError(f"I don't know '{value}': teach it to me first with /learn {value}")
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
        free = [_POSITIONS[p] for p in order if _POSITIONS[p] not in taken]
        if not free:
            raise PromptError("there is no free spot in this picture"
                              + (f" on the {position}" if position else ""))
        head, tail = caption.split(" with ", 1)
        return f"{head} and a {value} {free[0]} with {tail}"
    where = f" {_POSITIONS[position]}" if position else ""
    return f"{caption} and a {value}{where}"


@dataclass
class EditOutcome:
    """What a command produced: the edited image and a picture of the attention behind it."""

    image: Image.Image
    maps: Image.Image
    result: EditResult
    prompt_edit: PromptEdit


class Editor:
    """Runs commands on photos with one model: inverts once per photo, edits many times."""

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

    def run(self, inversion: Inversion, command: str | Command,
            concepts: Iterable[Concept] = (), progress: Callable[[int, int], None] | None = None,
            seed: int | None = None) -> EditOutcome:
        """Carry out one command on an inverted photo with the given learned concepts."""
        command = parse_command(command) if isinstance(command, str) else command
        by_name = {c.name: c for c in concepts}
        install_concepts(self.model, by_name.values())
        prompt_edit = plan_edit(self.model, inversion.prompt, command, by_name)
        settings = self.edit_settings if seed is None else replace(self.edit_settings, seed=seed)
        result = edit(self.model, inversion, prompt_edit, settings, progress)
        maps = attention_grid(result.image, result.maps[1], result.target_tokens)
        return EditOutcome(result.image, maps, result, prompt_edit)

    def add(self, inversion: Inversion, concept: Concept, position: str | None = None
            ) -> EditOutcome:
        return self.run(inversion, Command("add", value=concept.name, position=position),
                        [concept])

    def replace(self, inversion: Inversion, word: str, concept: Concept) -> EditOutcome:
        return self.run(inversion, Command("replace", subject=word, value=concept.name), [concept])

    def restyle(self, inversion: Inversion, style: Concept) -> EditOutcome:
        return self.run(inversion, Command("restyle", value=style.name), [style])

    def remove(self, inversion: Inversion, word: str) -> EditOutcome:
        return self.run(inversion, Command("remove", subject=word))
