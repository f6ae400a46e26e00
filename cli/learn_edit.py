"""`oneword learn` and `oneword edit`: the engine from the command line, with progress bars.
The edited photo is written at its own size (engine/full_size.py).

Registering the commands imports nothing heavy; the engine loads when one of them runs, so
`oneword bot` never pays for torch. Every input (photos, names, output folders, concept files,
the edit's words) is checked before the model loads, so a mistake is never found after minutes
of learning or inverting.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from oneword.grammar import USAGE, CommandError, EditCommand, parse_edit
from oneword.jobs import ConceptKind
from oneword.limits import IMAGE_LIMITS
from oneword.modes import INVERSION_MODES
from oneword.names import NAME_RULE, InvalidName, concept_name


class InputError(ValueError):
    """An input the command refuses before loading the model; the message is for people."""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the engine's subcommands on the top-level parser."""
    learn = subparsers.add_parser("learn", help="learn a new word from 3-20 photos")
    learn.add_argument("images", nargs="+", type=Path, help="photos of the thing")
    learn.add_argument("--name", required=True, help=f"the new word: {NAME_RULE}")
    learn.add_argument("--kind", choices=[k.value for k in ConceptKind], default="object")
    learn.add_argument("--out", required=True, type=Path, help="concept file to write")
    learn.add_argument("--steps", type=int, default=None, help="at most (default: 600)")
    learn.add_argument("--vectors", type=int, default=None,
                       help="tokens per word (default: 4, a style's 2; a word started from a "
                            "description gets one per word of it, up to 8)")
    learn.add_argument("--init", default=None,
                       help="words to start from, e.g. 'cat' or 'fluffy grey cat' (default: "
                            "the model's captioner's words for the subject, if it has one)")
    learn.add_argument("--describe", action="append", default=[], metavar="TEXT",
                       help="what else the photos show, e.g. 'on a beach' ('a dog on a sofa' "
                            "for a style): once for every photo, or once per photo in order")
    learn.add_argument("--seed", type=int, default=0)
    _model_options(learn)
    learn.set_defaults(run=run_learn)

    edit = subparsers.add_parser("edit", help="edit a photo with a one-line command")
    edit.add_argument("image", type=Path)
    edit.add_argument("command", help=f"one of: {USAGE}")
    edit.add_argument("--caption", default=None, help="what the photo shows (else captioned)")
    edit.add_argument("--concept", action="append", type=Path, default=[],
                      help="a learned concept file (repeatable)")
    edit.add_argument("--out", required=True, type=Path)
    edit.add_argument("--maps", type=Path, default=None, help="also write the attention maps")
    edit.add_argument("--mode", default=None, choices=INVERSION_MODES,
                      help="inversion: direct (faithful, fast), null-text (faithful, slow), "
                           "fast (negative prompt), ddim (default: the bot's, by the settings' "
                           "inversion_mode and learned_replace_inversion_mode)")
    edit.add_argument("--steps", type=int, default=None, help="inversion steps (default: 50)")
    edit.add_argument("--seed", type=int, default=0)
    _model_options(edit)
    edit.set_defaults(run=run_edit)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="diffusers folder or hub id of an SD 1.x/2.x model "
                             "(default: the bundled sticker-world model)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best)")


def _given(**values: object) -> dict[str, object]:
    """The options the user set, so the engine's own defaults apply to the rest."""
    return {k: v for k, v in values.items() if v is not None}


def check_output(path: Path, what: str) -> None:
    """InputError unless ``path`` can be written: its folder exists and is writable, and it is
    not a folder itself (the result would otherwise be lost after the slow part)."""
    folder = path.parent
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; give a file name, e.g. {path / 'out.png'}")
    if not folder.is_dir():
        raise InputError(f"{what} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot write into the folder {folder}")


def check_photo(path: Path) -> None:
    """InputError unless ``path`` is a picture the engine will read (engine.images: PIL)."""
    from engine.errors import ImageError
    from engine.images import read_image

    try:
        read_image(path, IMAGE_LIMITS)
    except ImageError as exc:
        raise InputError(f"photo {path}: {exc}") from None


def check_learn(args: argparse.Namespace) -> None:
    """Every input of `oneword learn`, before the model loads; InputError says what is wrong."""
    from engine.config import ConceptSettings

    try:
        concept_name(args.name)
    except InvalidName as exc:
        raise InputError(f"--name {args.name!r}: {exc}") from None
    bounds = ConceptSettings()
    if not bounds.min_images <= len(args.images) <= bounds.max_images:
        raise InputError(f"give {bounds.min_images} to {bounds.max_images} photos of the thing "
                         f"({len(args.images)} given)")
    if len(args.describe) not in (0, 1, len(args.images)):
        raise InputError(f"give --describe once, or once per photo ({len(args.images)} times)")
    for option, value in (("--steps", args.steps), ("--vectors", args.vectors)):
        if value is not None and value < 1:
            raise InputError(f"{option} must be at least 1 ({value} given)")
    for photo in args.images:
        check_photo(photo)
    check_output(args.out, "--out")


def run_learn(args: argparse.Namespace) -> int:
    """Learn a concept from photo files and write it."""
    try:
        check_learn(args)
    except InputError as exc:
        return _refuse(str(exc))
    from tqdm import tqdm

    from engine.captioning import load_captioner
    from engine.concepts import save_concept
    from engine.config import ConceptSettings
    from engine.faces import PersonFinder, load_face_finder
    from engine.model import load_model
    from engine.segmentation import load_segmenter
    from engine.textual_inversion import learn_concept_from_files
    from oneword.settings import load_settings

    descriptions = (args.describe * len(args.images) if len(args.describe) == 1
                    else args.describe or None)
    model = load_model(args.model, args.device)
    people = None
    if args.kind == "person":  # a person's loss lies on the head and shoulders found
        configured = load_settings()
        people = PersonFinder(load_face_finder(configured.face_detector),
                              load_segmenter(model.source, configured.segmenter))
    settings = ConceptSettings(**_given(steps=args.steps, vectors=args.vectors,
                                        style_vectors=args.vectors, seed=args.seed))
    window = settings.early_stop_window_for(args.kind)
    if window:
        print(f"learning <{args.name}>: at most {settings.steps} steps; it stops once the loss "
              f"has not improved for {window} steps, and the bar ends where that would be now")
    # no total until the engine tells where learning would end (not the cap, when it stops early)
    with tqdm(total=None if window else settings.steps, desc=f"learning {args.name}",
              unit="step") as bar:
        def progress(p) -> None:
            bar.total = p.stops_by or p.total
            bar.update(p.step - bar.n)
            bar.set_postfix(loss=f"{p.loss:.4f}")

        result = learn_concept_from_files(model, args.images, args.name, args.kind, settings,
                                          initializer=args.init, progress=progress,
                                          captioner=load_captioner(model.source),
                                          descriptions=descriptions, people=people)
    for warning in result.warnings:
        print(f"warning: {warning}")
    save_concept(result.concept, args.out)
    start = f", started from '{result.start_words}'" if result.start_words else ""
    print(f"learned <{result.concept.name}> in {result.steps} steps ({result.reason}), "
          f"focused on {result.focus}{start}; wrote {args.out}")
    return 0


def check_edit(args: argparse.Namespace) -> tuple[EditCommand, list]:
    """Every input of `oneword edit` that can be checked before the model loads: the command,
    the photo, the output files and the concept files (loaded: they are small). Returns the
    command and the concepts; InputError (or the engine's ConceptFileError) says what is wrong.
    """
    try:
        command = parse_edit(args.command)
    except CommandError as exc:
        raise InputError(str(exc)) from None
    if command is None:
        raise InputError(f"'{args.command}' is not an edit command; use one of: {USAGE}")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be at least 1 ({args.steps} given)")
    check_photo(args.image)
    check_output(args.out, "--out")
    if args.maps is not None:
        check_output(args.maps, "--maps")
    for path in args.concept:
        if not path.is_file():
            raise InputError(f"--concept {path}: no such file")
    from engine.concepts import load_concept

    concepts = [load_concept(path) for path in args.concept]
    check_concept_word(command, args.command, [c.name for c in concepts])
    return command, concepts


def check_concept_word(command: EditCommand, text: str, learned: list[str]) -> None:
    """InputError when the command's name can only be a learned word (written ``<name>``, or
    with digits, '-' or '_') and no --concept file holds it. A plain word may be one the
    model knows; the model itself tells, before inverting."""
    name = command.concept
    if name is None or name in learned:
        return
    if f"<{name}>" in text.lower() or not re.fullmatch(r"[a-z]+", name):
        given = ", ".join(f"<{n}>" for n in learned) or "none"
        raise InputError(f"<{name}> is not a learned word here (the --concept files hold: "
                         f"{given}); add its file with --concept FILE")


def run_edit(args: argparse.Namespace) -> int:
    """Edit one photo with a command in the bot's grammar."""
    try:
        command, concepts = check_edit(args)
    except InputError as exc:
        return _refuse(str(exc))
    from tqdm import tqdm

    from engine.concept_tokens import concepts_in_use
    from engine.config import InversionSettings
    from engine.faces import load_face_finder
    from engine.images import read_image
    from engine.model import load_model
    from engine.operations import Editor, plan_edit
    from engine.photo_captioner import captioner_for
    from engine.segmentation import load_segmenter
    from oneword.settings import load_settings
    from worker.tasks import edit_request

    model = load_model(args.model, args.device)
    inversion_settings = InversionSettings(**_given(steps=args.steps))
    configured = load_settings()
    captioner = captioner_for(model.source, model.device, configured.captioner)
    editor = Editor(model, captioner, inversion_settings,
                    mode=args.mode or configured.inversion_mode,
                    faces=load_face_finder(configured.face_detector),
                    learned_replace_mode=(args.mode or configured.learned_replace_inversion_mode
                                          or None),
                    segmenter=load_segmenter(model.source, configured.segmenter))
    image = read_image(args.image, IMAGE_LIMITS)
    request = edit_request(command)
    named = [c.kind for c in concepts if c.name.lower() == (request.concept or "").lower()]
    mode = editor.inversion_mode(request, named[0] if named else None)
    caption = editor.source_prompt(image, request, args.caption or command.caption)
    with concepts_in_use(model, concepts):  # cheap: an edit that cannot be planned stops here
        plan_edit(model, caption, request, {c.name: c for c in concepts},
                  grammar=editor.grammar)
    steps = inversion_settings.steps
    with tqdm(total=steps, desc=f"inverting ({mode})", unit="step") as bar:
        inversion = editor.prepare(image, caption, framing=editor.framing(image, request),
                                   progress=lambda i, n, loss: bar.update(i - bar.n), mode=mode)
    print(f"caption: {inversion.prompt}")
    with tqdm(total=steps, desc="editing", unit="step") as bar:
        outcome = editor.run(inversion, request, concepts, seed=args.seed, photo=image,
                             progress=lambda i, n: bar.update(i + 1 - bar.n))
    print(f"edit: '{outcome.prompt_edit.source}' -> '{outcome.prompt_edit.target}'")
    outcome.image.save(args.out)
    if args.maps:
        outcome.maps.save(args.maps)
    print(f"wrote {args.out}" + (f" and {args.maps}" if args.maps else ""))
    return 0


def _refuse(reason: str) -> int:
    print(f"oneword: {reason}", file=sys.stderr)
    return 2
