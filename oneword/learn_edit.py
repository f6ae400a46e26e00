"""`oneword learn` and `oneword edit`: the engine from the command line, with progress bars.

Registering the commands imports nothing heavy; the engine loads when one of them runs, so
`oneword bot` never pays for torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oneword.grammar import USAGE, CommandError, parse_edit
from oneword.jobs import ConceptKind
from oneword.limits import IMAGE_LIMITS
from oneword.names import NAME_RULE


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
    edit.add_argument("--mode", default="direct",
                      help="inversion: direct (faithful, fast), null-text (faithful, slow), "
                           "fast (negative prompt), ddim")
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


def run_learn(args: argparse.Namespace) -> int:
    """Learn a concept from photo files and write it."""
    from tqdm import tqdm

    from engine.captioning import load_captioner
    from engine.concepts import save_concept
    from engine.config import ConceptSettings
    from engine.model import load_model
    from engine.textual_inversion import learn_concept_from_files

    if len(args.describe) not in (0, 1, len(args.images)):
        return _refuse(f"give --describe once, or once per photo ({len(args.images)} times)")
    descriptions = (args.describe * len(args.images) if len(args.describe) == 1
                    else args.describe or None)
    model = load_model(args.model, args.device)
    settings = ConceptSettings(**_given(steps=args.steps, vectors=args.vectors,
                                        style_vectors=args.vectors, seed=args.seed))
    with tqdm(total=settings.steps, desc=f"learning {args.name}", unit="step") as bar:
        def progress(p) -> None:
            bar.total = p.total
            bar.update(p.step - bar.n)
            bar.set_postfix(loss=f"{p.loss:.4f}")

        result = learn_concept_from_files(model, args.images, args.name, args.kind, settings,
                                          initializer=args.init, progress=progress,
                                          captioner=load_captioner(model.source),
                                          descriptions=descriptions)
    for warning in result.warnings:
        print(f"warning: {warning}")
    save_concept(result.concept, args.out)
    start = f", started from '{result.start_words}'" if result.start_words else ""
    print(f"learned <{result.concept.name}> in {result.steps} steps ({result.reason}), "
          f"focused on {result.focus}{start}; wrote {args.out}")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    """Edit one photo with a command in the bot's grammar."""
    try:
        command = parse_edit(args.command)
    except CommandError as exc:
        return _refuse(str(exc))
    if command is None:
        return _refuse(f"'{args.command}' is not an edit command; use one of: {USAGE}")
    from tqdm import tqdm

    from engine.captioning import load_captioner
    from engine.concepts import load_concept
    from engine.config import InversionSettings
    from engine.images import read_image
    from engine.model import load_model
    from engine.operations import Editor
    from worker.tasks import edit_request

    model = load_model(args.model, args.device)
    concepts = [load_concept(path) for path in args.concept]
    inversion_settings = InversionSettings(**_given(steps=args.steps))
    editor = Editor(model, load_captioner(model.source), inversion_settings, mode=args.mode)
    image = read_image(args.image, IMAGE_LIMITS)
    steps = inversion_settings.steps
    with tqdm(total=steps, desc=f"inverting ({args.mode})", unit="step") as bar:
        inversion = editor.prepare(image, args.caption or command.caption,
                                   progress=lambda i, n, loss: bar.update(i - bar.n))
    print(f"caption: {inversion.prompt}")
    with tqdm(total=steps, desc="editing", unit="step") as bar:
        outcome = editor.run(inversion, edit_request(command), concepts, seed=args.seed,
                             progress=lambda i, n: bar.update(i + 1 - bar.n))
    print(f"edit: '{outcome.prompt_edit.source}' -> '{outcome.prompt_edit.target}'")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    outcome.image.save(args.out)
    if args.maps:
        outcome.maps.save(args.maps)
    print(f"wrote {args.out}" + (f" and {args.maps}" if args.maps else ""))
    return 0


def _refuse(reason: str) -> int:
    print(f"oneword: {reason}", file=sys.stderr)
    return 2
