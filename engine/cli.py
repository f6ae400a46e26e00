"""`oneword learn` and `oneword edit`: the engine from the command line, with progress bars."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from engine.config import INVERSION_MODES, ConceptSettings, InversionSettings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the engine's subcommands on the top-level parser."""
    learn = subparsers.add_parser("learn", help="learn a new word from 3-20 photos")
    learn.add_argument("images", nargs="+", type=Path, help="photos of the thing")
    learn.add_argument("--name", required=True, help="the new word (letters, digits, _ and -)")
    learn.add_argument("--kind", choices=("object", "person", "style"), default="object")
    learn.add_argument("--out", required=True, type=Path, help="concept file to write")
    learn.add_argument("--steps", type=int, default=ConceptSettings.steps)
    learn.add_argument("--vectors", type=int, default=ConceptSettings.vectors)
    learn.add_argument("--init", default=None, help="a word to start from, e.g. 'cat'")
    learn.add_argument("--seed", type=int, default=0)
    _model_options(learn)
    learn.set_defaults(run=run_learn)

    edit = subparsers.add_parser("edit", help="edit a photo with a one-line command")
    edit.add_argument("image", type=Path)
    edit.add_argument("command", help="e.g. 'replace circle with <name>', 'restyle as <name>'")
    edit.add_argument("--caption", default=None, help="what the photo shows (else captioned)")
    edit.add_argument("--concept", action="append", type=Path, default=[],
                      help="a learned concept file (repeatable)")
    edit.add_argument("--out", required=True, type=Path)
    edit.add_argument("--maps", type=Path, default=None, help="also write the attention maps")
    edit.add_argument("--mode", choices=INVERSION_MODES, default="null-text",
                      help="inversion: null-text (faithful, slow), direct (faithful, fast), "
                           "fast (negative prompt), ddim")
    edit.add_argument("--steps", type=int, default=InversionSettings.steps)
    edit.add_argument("--seed", type=int, default=0)
    _model_options(edit)
    edit.set_defaults(run=run_edit)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="diffusers folder or hub id of an SD 1.x/2.x model "
                             "(default: the bundled sticker-world model)")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best)")


def run_learn(args: argparse.Namespace) -> int:
    from engine.captioning import load_captioner
    from engine.concepts import save_concept
    from engine.model import load_model
    from engine.textual_inversion import learn_concept_from_files

    model = load_model(args.model, args.device)
    settings = ConceptSettings(steps=args.steps, vectors=args.vectors, seed=args.seed)
    with tqdm(total=args.steps, desc=f"learning {args.name}", unit="step") as bar:
        def progress(p) -> None:
            bar.total = p.total
            bar.update(p.step - bar.n)
            bar.set_postfix(loss=f"{p.loss:.4f}")

        result = learn_concept_from_files(model, args.images, args.name, args.kind, settings,
                                          initializer=args.init, progress=progress,
                                          captioner=load_captioner(model.source))
    for warning in result.warnings:
        print(f"warning: {warning}")
    save_concept(result.concept, args.out)
    print(f"learned <{result.concept.name}> in {result.steps} steps ({result.reason}); "
          f"wrote {args.out}")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from engine.captioning import load_captioner
    from engine.concepts import load_concept
    from engine.images import read_image
    from engine.model import load_model
    from engine.operations import Editor

    model = load_model(args.model, args.device)
    concepts = [load_concept(path) for path in args.concept]
    editor = Editor(model, load_captioner(model.source), InversionSettings(steps=args.steps),
                    mode=args.mode)
    image = read_image(args.image)
    with tqdm(total=args.steps, desc=f"inverting ({args.mode})", unit="step") as bar:
        inversion = editor.prepare(image, args.caption,
                                   progress=lambda i, n, loss: bar.update(i - bar.n))
    print(f"caption: {inversion.prompt}")
    with tqdm(total=args.steps, desc="editing", unit="step") as bar:
        outcome = editor.run(inversion, args.command, concepts, seed=args.seed,
                             progress=lambda i, n: bar.update(i + 1 - bar.n))
    print(f"edit: '{outcome.prompt_edit.source}' -> '{outcome.prompt_edit.target}'")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    outcome.image.save(args.out)
    if args.maps:
        outcome.maps.save(args.maps)
    print(f"wrote {args.out}" + (f" and {args.maps}" if args.maps else ""))
    return 0
