"""Average the weights of several exports of one training run (a "model soup").

At a constant learning rate late in training, each export's EMA weights sit at another point
around the same minimum, and their mean sits nearer its middle. On the sticker world the mean
of the bundled model at step 44,000 and the six exports of its 44,000 -> 50,000 CPU
continuation drew named fine features better than either end of the run (0.84 against 0.80
and 0.79), restyled better and kept the learned things' edits within their noise; see the
model card ("Averaging the exports of a run").

Only the parts the UNet stage trains (UNet and text encoder) are averaged; every other file
(VAE, tokenizer, scheduler, captioner) is the first export's, and the VAEs must agree, as a
mean of latents' decoders would fit none of their latents.

    python -m world.average --out engine/models/sticker-world runs/cpu/export-4*000 ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

AVERAGED_PARTS = {"unet": "diffusion_pytorch_model.safetensors",
                  "text_encoder": "model.safetensors"}
SHARED_PARTS = {"vae": "diffusion_pytorch_model.safetensors"}


class AverageError(ValueError):
    """The exports cannot be averaged (too few, another architecture, another VAE)."""


def average_weights(states: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same names and shapes, in each tensor's
    own dtype. States are read one at a time into a float64 sum, so averaging many exports of
    a large model holds that sum and one export in memory, not every export at once."""
    states = iter(states)
    first = next(states, None)
    if first is None:
        raise AverageError("nothing to average")
    dtypes = {name: tensor.dtype for name, tensor in first.items()}
    total = {name: tensor.double() for name, tensor in first.items()}
    del first  # only the sum and the export being read stay in memory
    count = 1
    for count, state in enumerate(states, start=2):
        if state.keys() != total.keys():
            raise AverageError(f"export {count} has other weights than the first "
                               f"({len(state.keys() ^ total.keys())} names differ)")
        for name, tensor in state.items():
            if tensor.shape != total[name].shape:
                raise AverageError(f"export {count}: {name} is {tuple(tensor.shape)}, "
                                   f"the first export's {tuple(total[name].shape)}")
            total[name] += tensor.double()
    return {name: (summed / count).to(dtypes[name]) for name, summed in total.items()}


def average_exports(sources: Sequence[Path], out: Path) -> dict:
    """Write to `out` a model folder whose UNet and text encoder are the mean of `sources`'
    (exported model folders of one run), and return its training record.

    The record is the latest source's (so a warm start from the folder goes on from its
    step) with `averaged_from` added: every source's UNet step.
    `out` may be one of the sources: the result is built beside it and then moved in."""
    sources = [Path(s) for s in sources]
    if len(sources) < 2:
        raise AverageError(f"give two or more exports to average, not {len(sources)}")
    records = [_training_record(source) for source in sources]
    for part, name in SHARED_PARTS.items():
        reference = load_file(sources[0] / part / name)
        for source in sources[1:]:
            other = load_file(source / part / name)
            if other.keys() != reference.keys() or any(
                    not torch.equal(other[k], reference[k]) for k in reference):
                raise AverageError(f"{source} has another {part} than {sources[0]}; only "
                                   "exports of one run (one VAE) can be averaged")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        built = Path(tmp) / "model"
        shutil.copytree(sources[0], built)
        for part, name in AVERAGED_PARTS.items():
            mean = average_weights(load_file(source / part / name) for source in sources)
            save_file(mean, built / part / name, metadata={"format": "pt"})
        steps = [r["unet_steps"] for r in records]
        record = {**max(records, key=lambda r: r["unet_steps"]), "averaged_from": steps}
        (built / "training.json").write_text(json.dumps(record, indent=2))
        if out.exists():
            shutil.rmtree(out)
        shutil.move(built, out)
    return record


def _training_record(folder: Path) -> dict:
    """An export's training.json, with a clear error for a folder that is not an export."""
    info = folder / "training.json"
    missing = [p for p in (info, *(folder / part / name for part, name in
                                   {**AVERAGED_PARTS, **SHARED_PARTS}.items()))
               if not p.is_file()]
    if missing:
        raise AverageError(f"{folder} is not an exported model folder (no {missing[0].name} "
                           f"in {missing[0].parent})")
    return json.loads(info.read_text())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="exported model folders")
    parser.add_argument("--out", type=Path, required=True, help="the averaged model folder")
    args = parser.parse_args(argv)
    try:
        record = average_exports(args.sources, args.out)
    except AverageError as error:
        raise SystemExit(f"world.average: {error}") from None
    print(f"averaged UNet steps {record['averaged_from']} into {args.out}")


if __name__ == "__main__":
    main()
