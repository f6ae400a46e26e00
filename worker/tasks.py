"""The engine work behind each job kind, for one worker lane (one model of its own).

These methods are synchronous and run in a thread; they report progress through a callback and
stop when `should_stop()` turns true. They read and write files, never the database.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from engine.acceleration import accelerate
from engine.captioning import load_captioner
from engine.concepts import Concept, load_concept, save_concept
from engine.config import CheckSettings, ConceptSettings, EditSettings, InversionSettings
from engine.faces import PersonFinder, load_face_finder
from engine.images import Framing, read_image
from engine.inversion import Inversion
from engine.likeness import load_judge
from engine.model import DiffusionModel, load_model
from engine.operations import Editor, EditOutcome, EditRequest
from engine.packs import load_pack_plan, make_pack
from engine.photo_captioner import captioner_for
from engine.segmentation import load_segmenter
from engine.self_check import SelfCheck, learn_checked
from engine.stickers import make_sticker, sticker_webp
from engine.textual_inversion import LearnedWord, preview_image
from oneword.grammar import EditCommand
from oneword.settings import Settings

log = logging.getLogger(__name__)
Report = Callable[[float, str], None]  # (fraction done, short text)
StopCheck = Callable[[], bool]


def edit_request(command: EditCommand) -> EditRequest:
    """The engine's request for a command people typed (the grammar stays out of the engine)."""
    return EditRequest(command.action, subject=command.subject, concept=command.concept,
                       position=command.position)


def _per_photo(descriptions: list[str] | None, count: int) -> list[str | None] | None:
    """One description (or None) per photo, or None when the sender gave none."""
    if not descriptions or not any(descriptions):
        return None
    padded = list(descriptions[:count]) + [""] * (count - len(descriptions))
    return [text or None for text in padded]


@dataclass
class DrawnSticker:
    """One sticker of a pack, encoded for Telegram."""

    index: int  # its place in the pack
    webp: bytes  # the sticker, longer side 512 px
    emoji_png: bytes  # the same as a 100x100 custom emoji
    emoji: str
    name: str  # the expression's name


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class EngineTasks:
    """A loaded model and the operations jobs ask of it."""

    def __init__(self, settings: Settings, model: DiffusionModel | None = None):
        self.settings = settings
        self.model = accelerate(model or load_model(settings.model or None,
                                                    settings.device or None,
                                                    safety=bool(settings.safety_checker)),
                                bool(settings.compile_unet))
        # the captioning model the settings name, else the model folder's own captioner
        self.captioner = captioner_for(self.model.source, self.model.device, settings.captioner)
        self.segmenter = load_segmenter(self.model.source, settings.segmenter)
        # where a person's portraits show the head and shoulders, for the person kind's loss
        self.people = PersonFinder(load_face_finder(settings.face_detector), self.segmenter)
        self.pack_plan = load_pack_plan(self.model.source, settings.pack_expressions)
        self.editor = Editor(self.model, self.captioner,
                             InversionSettings(steps=settings.inversion_steps),
                             EditSettings(subject_min_focus=settings.subject_min_focus),
                             mode=settings.inversion_mode, faces=self.people.faces,
                             learned_replace_mode=settings.learned_replace_inversion_mode
                             or None, segmenter=self.segmenter)
        # what compares a word's photos and drawings: the image model the settings name, else
        # the model folder's own captioner
        self.check_settings = CheckSettings(tries=settings.self_check_tries)
        own_captioner = (load_captioner(self.model.source) if settings.captioner
                         else self.captioner)
        self.judge = load_judge(settings.likeness_model, own_captioner, self.model.device,
                                self.check_settings)
        log.info("lane ready: model %s on %s", self.model.source, self.model.device)

    @property
    def model_id(self) -> str:
        return self.model.source

    def learn(self, photos: list[Path], name: str, kind: str, report: Report,
              should_stop: StopCheck, descriptions: list[str] | None = None
              ) -> tuple[LearnedWord, Image.Image, SelfCheck | None]:
        """Learn a concept from photo files; returns it with a preview picture and its
        self-check (None without a judge). `descriptions` (one per photo, "" for none) are the
        sender's words for what else a photo shows. Photos that disagree raise
        MixedPhotosError before any learning."""
        images = [read_image(path) for path in photos]
        settings = ConceptSettings(steps=self.settings.learn_steps)

        def progress(p) -> None:  # the end shown is where early stopping would end it now
            end = p.stops_by or p.total
            report(0.95 * p.step / end, f"learning: step {p.step} of {end}")

        result, check = learn_checked(self.model, images, name, kind, settings, self.judge,
                                      self.check_settings, progress=progress,
                                      should_stop=should_stop, captioner=self.captioner,
                                      people=self.people,
                                      descriptions=_per_photo(descriptions, len(images)))
        if result.reason == "cancelled":
            raise InterruptedError("learning cancelled")
        log.info("learned a %s in %d steps, its loss focused on %s", kind, result.steps,
                 result.focus)
        if check is not None and check.best_drawing is not None:
            return result, check.best_drawing, check
        report(0.97, "drawing a preview")
        preview = preview_image(self.model, result.concept.vectors, kind, seed=0,
                                template=result.preview_caption)
        return result, preview, check

    def invert(self, photo: Path, caption: str | None, report: Report,
               should_stop: StopCheck, framing: Framing = Framing.CENTRE,
               mode: str | None = None) -> Inversion:
        """Invert a photo (the slow part of an edit), framed as `framing` says, in `mode`
        (default: the settings' inversion_mode; an edit's own is `inversion_mode`)."""
        image = read_image(photo)
        return self.editor.prepare(
            image, caption, should_stop=should_stop, framing=framing, mode=mode,
            progress=lambda i, n, _loss: report(0.7 * i / n, f"reading the photo: {i}/{n}"))

    def inversion_mode(self, command: EditCommand, concept_kind: str | None) -> str:
        """The inversion mode `command` is edited after: the settings'
        learned_replace_inversion_mode for a replace with a learned thing's word
        (`concept_kind`: the kind of the learned concept its word names, None for none), else
        inversion_mode."""
        return self.editor.inversion_mode(edit_request(command), concept_kind)

    def framing(self, photo: Path, command: EditCommand) -> Framing:
        """How `command` needs the photo put into the model's square: a restyle of a photo
        that is not square sees its whole frame, other edits the centre square."""
        return self.editor.framing(read_image(photo), edit_request(command))

    def source_prompt(self, photo: Path, command: EditCommand) -> str | None:
        """The prompt to invert the photo under for `command`, or None when any earlier
        inversion of it will do (an add or restyle without a caption of the user's). Reads
        the photo first, so an unreadable one is refused before any inversion."""
        image = read_image(photo)
        request = edit_request(command)
        if command.caption is None and request.subject is None:
            return None
        return self.editor.source_prompt(image, request, command.caption)

    def edit(self, photo: Path, inversion: Inversion, command: EditCommand,
             concept_files: list[Path], seed: int, report: Report) -> EditOutcome:
        """Run one edit command on an inverted photo; the result is at the photo's size."""
        concepts = [load_concept(path) for path in concept_files]
        return self.editor.run(
            inversion, edit_request(command), concepts, seed=seed, photo=read_image(photo),
            progress=lambda i, n: report(0.7 + 0.3 * (i + 1) / n, f"editing: {i + 1}/{n}"))

    def sticker(self, photo: Path, caption: str | None, report: Report) -> bytes:
        """A 512 px WEBP sticker of the photo's subject."""
        image = read_image(photo)
        report(0.2, "finding the subject")
        if self.segmenter is None:
            caption = self.editor.caption(image, caption)
        return sticker_webp(make_sticker(self.model, image, caption, segmenter=self.segmenter))

    def pack(self, concept_file: Path, seed: int, redo: int | None,
             report: Report) -> list[DrawnSticker]:
        """The stickers of a learned word's pack (or the one sticker `redo` names)."""
        concept = load_concept(concept_file)
        which = None if redo is None else [redo]
        total = len(self.pack_plan.expressions) if redo is None else 1
        report(0.02, f"drawing sticker 1 of {total}")

        def progress(done: int, count: int) -> None:
            text = (f"drawing sticker {done + 1} of {count}" if done < count
                    else "putting the stickers in your set")
            report(0.02 + 0.93 * done / count, text)

        stickers = make_pack(self.model, concept, self.pack_plan, self.segmenter,
                             self.captioner, seed=seed, which=which, progress=progress)
        indexes = which or list(range(len(self.pack_plan.expressions)))
        return [DrawnSticker(index, sticker_webp(drawn.sticker), _png(drawn.custom_emoji()),
                             drawn.emoji, drawn.expression.name)
                for index, drawn in zip(indexes, stickers, strict=True)]

    @staticmethod
    def save_concept(concept: Concept, path: Path) -> None:
        save_concept(concept, path)
