"""Writing the results: JSON with every number, and markdown tables a reader understands.

A complete full run writes `latest.json` and `latest.md` and a dated copy of both under
`history/`; the queue or the GPU part run alone in full writes `queue.*` or `gpu.*`; a quick,
partial or skipped run writes under `runs/` only (`bench.runner.report_name`), so it never
replaces the numbers the README links to.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.quality import EDIT_KINDS, SUCCESS_MEANING
from bench.speed import STAGE_TITLES, STAGES
from engine.inversion import MODES


def finite(value: Any) -> Any:
    """The value with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def write_report(report: dict, out_dir: Path, name: str) -> list[Path]:
    """Write the report's JSON and markdown as ``out_dir/name.*`` (``name`` may name a
    subfolder), and for "latest" a dated copy under history/; returns the files written."""
    (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(finite(report), indent=2, allow_nan=False) + "\n"
    text = markdown(report)
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    if name == "latest":
        stamp = report["meta"]["date"][:16].replace(":", "").replace("T", "-")
        (out_dir / "history").mkdir(exist_ok=True)
        paths += [out_dir / "history" / f"{stamp}.json", out_dir / "history" / f"{stamp}.md"]
    for path in paths:
        path.write_text(data if path.suffix == ".json" else text)
    return paths


# ---------------------------------------------------------------------------------------------
# Formatting


def seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.1f} s"
    return f"{value * 1000:.0f} ms"


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def megabytes(side: dict | None) -> str:
    if not side or side.get("peak_rss_mb") is None:
        return "—"
    text = f"{side['peak_rss_mb']:.0f} MB (+{side.get('rss_growth_mb') or 0:.0f})"
    if side.get("peak_gpu_mb") is not None:
        text += f", GPU {side['peak_gpu_mb']:.0f} MB"
    return text


def quality_text(quality: dict | None) -> str:
    """A stage's quality figures in words."""
    if not quality:
        return "—"
    parts = []
    if "reconstruction_psnr_db" in quality:
        parts.append(f"reconstruction {number(quality['reconstruction_psnr_db'])} dB")
    if "edit_psnr_db" in quality:
        parts.append(f"PSNR vs truth {number(quality['edit_psnr_db'])} dB")
    if "mask_iou" in quality:
        parts.append(f"mask IoU {number(quality['mask_iou'], 2)}")
    if "final_loss" in quality:
        if quality.get("shown") is not None:
            parts.append(f"recognised {percent(quality['shown'])} "
                         f"(bar {percent(quality.get('bar', 0.8))})")
        parts.append(f"loss {number(quality['final_loss'], 4)}")
        if quality.get("steps") is not None:
            parts.append(f"{quality['steps']} steps"
                         + (f" ({quality['stopped']})" if quality.get("stopped") else ""))
    if "target_seconds" in quality:
        if quality.get("steps") is not None:
            parts.append(f"{quality['steps']} steps ({quality.get('stopped')})")
        parts.append(f"target <= {quality['target_seconds']:g} s")
    return ", ".join(parts)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def meta_lines(report: dict) -> list[str]:
    meta, machine, versions = report["meta"], report["meta"]["machine"], report["meta"]["versions"]
    commit = (versions.get("commit") or "unknown")[:10]
    if versions.get("dirty"):
        commit += " + uncommitted changes"
    cores = f"{machine['logical_cores']} logical cores"
    if machine.get("physical_cores"):
        cores += f" ({machine['physical_cores']} physical)"
    lines = [
        f"{meta['plan']['name'].capitalize()} run of {meta['date'][:16].replace('T', ' ')} "
        f"({meta['date'][16:]}), {meta['wall_seconds'] / 60:.1f} min; parts: "
        f"{', '.join(meta['parts'])}.",
        "",
        f"- **Machine:** {machine['cpu']}, {cores}, {machine['ram_gb']} GB RAM, "
        f"GPU: {machine['gpu'] or 'none'}; torch threads: {machine['torch_threads']}.",
        f"- **Versions:** Python {versions['python']}, torch {versions['torch']}, diffusers "
        f"{versions['diffusers']}, transformers {versions['transformers']}; commit {commit}.",
    ]
    model = report.get("model")
    if model:
        trained = model.get("training") or {}
        state = model_state(trained)
        checker = model["checker"] if model["checker_loaded"] else (
            f"none, so recognition is not measured ({model['checker']})")
        lines.append(f"- **Model:** `{model['source']}` (hash {model['hash']}, "
                     f"{model['image_size']} px, {state}); checker: {checker}.")
    return lines


def model_state(trained: dict) -> str:
    """'UNet step 44000', or for a folder averaged from a run's exports (world/average.py)
    'UNet steps 44000-50000 averaged (7 exports)'."""
    steps = trained.get("averaged_from")
    if steps:
        return f"UNet steps {min(steps)}-{max(steps)} averaged ({len(steps)} exports)"
    if "unet_steps" in trained:
        return f"UNet step {trained['unet_steps']}"
    return "training state unknown"


def evaluations_text(side: dict) -> str:
    """'forward / backward' UNet evaluations of one side of a stage, or a dash."""
    counted = side.get("evaluations", side)
    if "unet_forward" not in counted:
        return "—"
    star = " *" if side.get("extrapolated") else ""
    return f"{counted['unet_forward']:g} / {counted['unet_backward']:g}{star}"


def speed_section(speed: dict, plan: dict) -> list[str]:
    lines = ["## Speed", "",
             f"Device: {speed['device']}. Photo: the first sample photo, \"{speed['photo']}\". "
             f"Times are the median of {plan['repeats']} timed runs ({plan['slow_repeats']} for "
             "null-text inversion) after an untimed warm-up run; memory is the process's peak "
             "resident set during the timed runs (growth over the stage's start in brackets). "
             "Ratio = reference time / our time: how many times faster ours is. UNet "
             "evaluations per run: images through the UNet forward / backward (a batch of four "
             "is four), counted by hooks, so savings show whatever the clock.", ""]
    rows, notes = [], []
    for name in STAGES:
        row = speed["stages"][name]
        ours, ref = row["ours"], row["reference"]
        ref_time = "—"
        if ref is not None:
            ref_time = seconds(ref["seconds"]) + (" *" if ref["extrapolated"] else "")
        for side, who in ((ours, "ours"), (ref, "reference")):
            if side is not None and side.get("note"):
                star = "\\* " if side["extrapolated"] else ""
                notes.append(f"- {star}{STAGE_TITLES[name]}, {who}: {side['note']}.")
        rows.append([STAGE_TITLES[name], f"{seconds(ours['seconds'])} ({ours['label']})",
                     f"{ref_time} ({ref['label']})" if ref else "—",
                     f"{row['ratio']:.1f}×" if row["ratio"] else "—",
                     quality_text(ours["quality"]),
                     quality_text(ref["quality"]) if ref else "—",
                     evaluations_text(ours), evaluations_text(ref) if ref else "—",
                     megabytes(ours)])
    lines += table(["stage", "ours", "reference", "ratio (ref / ours)", "quality ours",
                    "quality reference", "UNet evals ours (fwd / bwd)", "UNet evals reference",
                    "peak memory ours"], rows)
    if notes:
        lines += ["", "Notes (\\* = extrapolated):", "", *notes]
    return lines


def quality_section(quality: dict) -> list[str]:
    lines = ["## Edit quality", "",
             f"{quality['edits']} held-out edits ({quality['scenes']} rendered scenes x "
             f"{len(quality['kinds'])} kinds), each after every inversion mode, "
             f"{quality['steps']} DDIM steps. Ground truth: the edited scene description "
             "rendered with the same seed. Background = outside the union of the old and new "
             "object's true masks, dilated (a restyle changes every pixel: there the whole "
             "picture is compared with the restyled truth). SSIM is Wang et al.'s (11-tap "
             "Gaussian, sigma 1.5)."
             + (" The bot's inversion mode for each kind (by its default settings) is marked."
                if quality.get("bot_modes") else ""), ""]
    rows = []
    for kind in (*EDIT_KINDS, "all"):
        for mode in MODES:
            cell = quality["by_kind"][kind][mode]
            n = str(cell["n"]) + (f" (+{cell['skipped']} skipped)" if cell["skipped"] else "")
            bots = mode == quality.get("bot_modes", {}).get(kind)
            rows.append([f"**{kind}**" if kind == "all" else kind,
                         f"**{mode}** (the bot's)" if bots else mode, n,
                         number(cell["background_psnr_db"], 1, " dB"),
                         number(cell["background_ssim"], 3),
                         number(cell["edit_psnr_db"], 1, " dB"), percent(cell["success"]),
                         seconds(cell["seconds_per_edit"])])
    lines += table(["edit", "inversion", "n", "background PSNR", "background SSIM",
                    "edit PSNR vs truth", "checker: intended change", "time per edit"], rows)
    lines += ["", "What the checker must read:", ""]
    lines += [f"- {kind}: {SUCCESS_MEANING[kind]}." for kind in EDIT_KINDS]
    shapes = quality.get("shape_and_pattern")
    if shapes and any(cell["n"] for cell in shapes.values()):
        lines += ["", "The object's replace-concept edits judged on shape and pattern alone (a "
                  "striped diamond read at the replaced object's place, whatever its colours): "
                  + ", ".join(f"{mode} {percent(cell['share'])} of {cell['n']}"
                              for mode, cell in shapes.items()) + "."]
    lines += ["", "### Reconstruction by inversion mode", ""]
    lines += table(["inversion", "reconstruction PSNR", "time per inversion", "scenes"],
                   [[mode, number(r["psnr_db"], 1, " dB"), seconds(r["seconds_per_inversion"]),
                     str(r["n"])] for mode, r in quality["reconstruction"].items()])
    concepts = quality.get("concepts")
    if concepts:
        lines += ["", "### The reserved concepts used", ""]
        lines += table(["concept", "recognised", "steps", "final loss", "learning time"],
                       [[which, percent(c["shown"]), str(c["steps"]),
                         number(c["final_loss"], 4),
                         seconds(c["seconds"]) + (" (cached)" if c["cached"] else "")]
                        for which, c in concepts.items()])
    return lines


def seeds_section(seeds: dict) -> list[str]:
    """Each learning seed's concept figures, then their mean and range (the object's
    replace-concept also judged on shape and pattern alone, where the run measured it)."""
    kinds = " and ".join(seeds["kinds"])
    lines = ["## Learning seeds", "",
             f"The {' and '.join(seeds['concepts'])} learned with {seeds['seeds']} seeds "
             f"(the quality part's concepts are seed 0's), each judged as above: recognised in "
             f"the concept figure's generations, and its {kinds} edits of the same "
             f"{seeds['scenes']} scenes after {seeds['mode']} inversion at {seeds['steps']} "
             "DDIM steps. The seed alone moves these figures; compare settings and models on "
             "the mean.", ""]
    figures = {which: ("shown", *seeds["kinds"],
                       *(f for f in seeds.get("extra_figures", ())
                         if seeds["spread"][which].get(f) is not None))
               for which in seeds["concepts"]}
    names = {"shown": "recognised"}
    header = ["seed"] + [f"{which}: {names.get(figure, figure)}" for which in seeds["concepts"]
                         for figure in (*figures[which], "steps")]
    rows = [[str(row["seed"])] + [cell for which in seeds["concepts"]
                                  for cell in (*(percent(row[which].get(f))
                                                 for f in figures[which]),
                                               str(row[which]["steps"]))]
            for row in seeds["rows"]]

    def summary(label: str, key: str) -> list[str]:
        cells = [label]
        for which in seeds["concepts"]:
            for figure in figures[which]:
                found = seeds["spread"][which].get(figure)
                cells.append(percent(found[key]) if found else "n/a")
            cells.append("")
        return cells

    rows += [summary("**mean**", "mean"), summary("lowest", "min"), summary("highest", "max")]
    lines += table(header, rows)
    if any(f in seeds.get("extra_figures", ()) for f in figures.get("object", ())):
        lines += ["", "Shape and pattern: the object's replace-concept edits in which the checker "
                  "reads a striped diamond at the replaced object's place, whatever its colours "
                  "(the figure above needs its colours too)."]
    return lines


# What the people part must reach (the mean over the learning seeds, and the lowest seed).
PEOPLE_TARGETS = ("add: recognised >= 80% mean and >= 60% lowest, background >= 30 dB; "
                  "replace: recognised >= 80% mean")


def people_section(people: dict) -> list[str]:
    """The person added to and swapped into group photos, per learning seed, then the mean and
    range over the seeds."""
    lines = ["## People in group photos", "",
             f"The reserved person learned from her five portraits (the person kind) with "
             f"{people['seeds']} learning seeds; with each, two edits of {people['scenes']} "
             "rendered group photos of two faces after "
             f"{people['mode']} inversion at {people['steps']} DDIM steps: \"add <person>\" "
             "(no place named: the free one) and \"replace the face <at one face's place> "
             "with <person>\". Each result is the picture the user receives (the photo's own "
             "pixels outside the edit's mask). Recognised: "
             + "; ".join(f"{name}: {meaning}" for name, meaning in
                         people["success_means"].items())
             + ". Background PSNR: against the edited scene's rendering outside the new face's "
             "(and the replaced face's) true mask, dilated. Same size: the new face read at "
             "the others' size. Mask: the share of the picture the edit's mask let it change. "
             f"Targets: {PEOPLE_TARGETS}.", ""]
    header = ["seed", "recognised (concept figure)", "add: recognised", "add: background PSNR",
              "add: same size", "add: mask", "replace: recognised", "replace: background PSNR",
              "replace: same size", "replace: mask", "steps"]

    def cells(get) -> list[str]:
        out = []
        for name in ("add", "replace"):
            for figure in ("recognised", "background_psnr_db", "size_right", "mask_share"):
                value = get(name, figure)
                out.append(number(value, 1, " dB") if figure == "background_psnr_db"
                           else percent(value))
        return out

    rows = [[str(row["seed"]), percent(row["shown"]),
             *cells(lambda name, figure, row=row: row[name].get(figure)),
             f"refused: {row['refused']}" if row.get("refused") else str(row["steps"])]
            for row in people["rows"]]
    spread = people["spread"]
    for label, key in (("**mean**", "mean"), ("lowest", "min"), ("highest", "max")):
        rows.append([label, percent(spread["shown"][key]) if spread["shown"] else "n/a",
                     *cells(lambda name, figure, key=key:
                            (spread[name].get(figure) or {}).get(key)),
                     ""])
    return lines + table(header, rows)


def gpu_section(gpu: dict) -> list[str]:
    lines = ["## GPU (SD 1.5 architecture, random weights)", ""]
    if "skipped" in gpu:
        return lines + [gpu["skipped"][:1].upper() + gpu["skipped"][1:] + "."]  # keeps "CUDA"
    params = gpu["parameters"]
    speedups = ", ".join(name for name, on in (("channels-last", gpu.get("channels_last")),
                                               ("torch.compile", gpu.get("compiled"))) if on)
    lines += [f"{gpu['device']} ({gpu.get('device_memory_gb', '?')} GB, compute capability "
              f"{gpu.get('compute_capability', '?')}, CUDA {gpu.get('cuda', '?')}; "
              f"{speedups or 'no speed-ups'}), {gpu['dtype']}, {gpu['image_size']} px; UNet "
              f"{params['unet'] / 1e6:.0f}M, VAE {params['vae'] / 1e6:.0f}M, text encoder "
              f"{params['text_encoder'] / 1e6:.0f}M parameters.", ""]
    lines += table(["stage", "time", "peak GPU memory", "UNet evals (fwd / bwd)", "settings"],
                   [[name.replace("_", " "), seconds(s["seconds"]),
                     number(s.get("peak_gpu_mb"), 0, " MB"), evaluations_text(s), s["label"]]
                    for name, s in gpu["stages"].items()])
    if gpu.get("options"):
        base = gpu["options"].get("as shipped", {}).get("seconds")
        lines += ["", "Each speed-up's effect on an edit from photo to result (direct inversion "
                  "and one edit), one change at a time against the engine as shipped:", ""]
        lines += table(["option", "time", "against as shipped", "peak GPU memory", "settings"],
                       [[name, seconds(o["seconds"]),
                         f"{o['seconds'] / base:.2f}x" if base else "?",
                         number(o.get("peak_gpu_mb"), 0, " MB"), o["label"]]
                        for name, o in gpu["options"].items()])
    return lines


def plan_text(plan: dict) -> str:
    """The counts and step numbers of the run, in words."""
    steps = (f"{plan['speed_steps']} DDIM steps" if plan["speed_steps"]
             else "the engine's default DDIM steps")
    ours_ti = (f"at most {plan['ti_steps']} steps" if plan["ti_steps"]
               else "our default steps and early stop")
    seed_mode = plan.get("seed_mode") or "each kind's bot"
    return (f"Counts chosen ({plan['name']} plan): speed stages at {steps}, "
            f"{plan['repeats']} timed runs each ({plan['slow_repeats']} for null-text "
            f"inversion); textual inversion with {ours_ti}, the reference's first "
            f"{plan['ti_reference_steps']} steps timed; concept recognition from "
            f"{plan['concept_samples']} generations of {plan['sample_steps']} steps; quality "
            f"on {plan['scenes']} scenes x 5 edits x {len(MODES)} inversion modes at "
            f"{plan['quality_steps']} DDIM steps; the creature's and object's edits again for "
            f"{plan['learning_seeds']} learning seeds after {seed_mode} inversion; "
            f"the person learned with as many seeds, added to and swapped into "
            f"{plan.get('people_scenes', 0)} group photos after "
            f"{plan.get('people_mode', 'direct')} inversion.")


def markdown(report: dict) -> str:
    """The report as markdown: what ran where, then one section per part."""
    lines = ["# OneWord benchmark", ""] + meta_lines(report)
    plan = report["meta"]["plan"]
    if {"speed", "quality", "seeds", "people"} & set(report):
        lines += ["", plan_text(plan), ""]
    else:
        lines += [""]
    if "speed" in report:
        lines += speed_section(report["speed"], plan) + [""]
    if "quality" in report:
        lines += quality_section(report["quality"]) + [""]
    if "seeds" in report:
        lines += seeds_section(report["seeds"]) + [""]
    if "people" in report:
        lines += people_section(report["people"]) + [""]
    if "gpu" in report:
        lines += gpu_section(report["gpu"]) + [""]
    if "queue" in report:
        from bench.queue import markdown_section

        lines += markdown_section(report["queue"]) + [""]
    how = ("`python -m bench --only queue`" if set(report) == {"meta", "queue"} else
           "`make bench` (or `python -m bench --quick` for a smoke run)")
    lines += [f"Regenerate with {how}; every number is in the JSON beside this file.", ""]
    return "\n".join(lines)
