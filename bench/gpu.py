"""GPU mode: the engine's stages on a Stable Diffusion 1.5-sized model with random weights.

Speed and memory depend on the architecture, not on the weights, so the UNet, VAE and CLIP text
encoder are built from SD 1.5's published configuration values (written out below; nothing is
downloaded) at 512 px in fp16 or bf16, and null-text inversion, one edit and textual-inversion
steps are timed with their peak GPU memory. The tokenizer is the sticker world's (a CLIP BPE
tokenizer over our vocabulary) padded to SD's 77 tokens; token ids only index the embedding
table, so its cost is SD's. `scale` shrinks every width, so tests build the same model on a CPU.
Quality is not measured: random weights draw noise.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from bench.concepts import learn_reserved
from bench.measure import PeakMemory, UNetCounter, time_runs
from bench.options import Plan
from engine.acceleration import accelerate
from engine.config import ConceptSettings, EditSettings, InversionSettings
from engine.inversion import invert
from engine.model import DiffusionModel
from engine.operations import Editor
from world.architecture import build_scheduler
from world.scene import vocabulary
from world.vocab import write_vocabulary

SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def scaled(width: int, scale: float, multiple: int = 8) -> int:
    """`width * scale` rounded to a multiple of `multiple` (at least one multiple)."""
    return max(multiple, round(width * scale / multiple) * multiple)


def sd15_configs(scale: float = 1.0, image_size: int = 512) -> dict[str, dict]:
    """Constructor arguments of SD 1.5's UNet, VAE and text encoder; widths times `scale`.

    At scale 1 these are the values of stable-diffusion-v1-5/stable-diffusion-v1-5's config files.
    """
    unet_widths = tuple(scaled(w, scale) for w in (320, 640, 1280, 1280))
    vae_widths = tuple(scaled(w, scale) for w in (128, 256, 512, 512))
    groups = 32 if all(w % 32 == 0 for w in unet_widths + vae_widths) else 8
    text_width = scaled(768, scale, 24)  # 12 heads of an even width
    unet = {
        "sample_size": image_size // 8, "in_channels": 4, "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": unet_widths, "layers_per_block": 2, "attention_head_dim": 8,
        "cross_attention_dim": text_width, "norm_num_groups": groups, "norm_eps": 1e-5,
        "act_fn": "silu", "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1,
        "mid_block_scale_factor": 1, "center_input_sample": False,
    }
    vae = {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": image_size,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": vae_widths,
        "layers_per_block": 2, "act_fn": "silu", "norm_num_groups": groups,
        "scaling_factor": 0.18215,
    }
    text = {
        "vocab_size": 49408, "hidden_size": text_width, "intermediate_size": 4 * text_width,
        "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "projection_dim": text_width, "layer_norm_eps": 1e-5,
    }
    return {"unet": unet, "vae": vae, "text_encoder": text}


def world_tokenizer(max_tokens: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer over the sticker world's vocabulary, `max_tokens` long."""
    with tempfile.TemporaryDirectory() as folder:
        write_vocabulary(vocabulary(), Path(folder))
        return CLIPTokenizer.from_pretrained(folder, model_max_length=max_tokens)


def build_sd15(scale: float = 1.0, image_size: int = 512, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float16, seed: int = 0) -> DiffusionModel:
    """An SD 1.5-architecture DiffusionModel with random weights, ready on `device`.

    Modules are created on the device itself (fast on a GPU), then the UNet and VAE are cast
    to `dtype` while the text encoder stays in fp32, as `engine.model.load_model` does.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    tokenizer = world_tokenizer()
    configs = sd15_configs(scale, image_size)
    with device:
        unet = UNet2DConditionModel(**configs["unet"])
        vae = AutoencoderKL(**configs["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **configs["text_encoder"], bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False).eval()
    unet.to(device, dtype)
    vae.to(device, dtype)
    text_encoder.to(device, torch.float32)
    return DiffusionModel(f"random-sd15-x{scale:g}-{image_size}px", tokenizer, text_encoder, unet,
                          vae, build_scheduler(), device, dtype)


def parameter_counts(model: DiffusionModel) -> dict[str, int]:
    return {name: sum(p.numel() for p in getattr(model, name).parameters())
            for name in ("unet", "vae", "text_encoder")}


def run_gpu_stages(model: DiffusionModel, settings: InversionSettings, ti_steps: int,
                   repeats: int, log: Callable[[str], None] = print) -> dict:
    """Time the inversions (null-text, direct, fast), an edit on each of the first two and
    textual-inversion steps on `model`, with their memory and UNet evaluations."""
    from bench.speed import EDIT_COMMAND, describe_inversion, speed_photo

    image, text, _ = speed_photo()
    stages: dict[str, dict] = {}
    inversions = {}
    for mode in ("null-text", "direct", "fast"):
        log(f"gpu: {mode} inversion ({describe_inversion(mode, settings)})")
        timing, inversions[mode] = time_runs(
            lambda mode=mode: invert(model, image, text, mode, settings), repeats, model.device,
            warmup=lambda mode=mode: invert(model, image, text, mode, replace(settings, steps=2)),
            unet=model.unet)
        stages[f"{mode.replace('-', '_')}_inversion"] = {
            "label": describe_inversion(mode, settings), **timing.as_dict()}
    editor = Editor(model, None, settings, EditSettings(), "null-text")
    for mode in ("null-text", "direct"):
        log(f"gpu: one edit on the {mode} inversion")
        timing, _ = time_runs(lambda mode=mode: editor.run(inversions[mode], EDIT_COMMAND),
                              repeats, model.device, unet=model.unet)
        stages["edit" if mode == "null-text" else "edit_direct"] = {
            "label": f"prompt-to-prompt on the {mode} inversion, {settings.steps} steps",
            **timing.as_dict()}

    log(f"gpu: {ti_steps} textual-inversion steps")
    concept = replace(ConceptSettings(), steps=ti_steps + 1, early_stop_window=0)
    stamps: list[float] = []
    with PeakMemory(model.device) as memory, UNetCounter(model.unet) as counter:
        learned, _ = learn_reserved(model, "creature", concept, stamps)
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # the first warms up
    per_step = sorted(steps)[len(steps) // 2] if steps else float("nan")
    stages["textual_inversion_step"] = {
        "label": f"batch {concept.batch_size}, {learned.concept.num_vectors} vectors",
        "seconds": round(per_step, 4), "runs": [round(s, 4) for s in steps], **memory.as_dict(),
        **counter.per_run(concept.steps)}
    return stages


# What the worker's photo-to-result time is made of, and what each speed-up does to it: the
# engine as the worker runs it ("as shipped": SDPA attention, channels-last, 50 steps), then one
# change at a time. The targets on one H100/H200: an edit from photo to result (inversion
# included) <= 2 s, learning <= 30 s, <= 6 GB peak memory.
OPTIONS = ("as shipped", "no channels-last", "fused QKV", "torch.compile", "25 steps",
           "20 steps")


@contextlib.contextmanager
def option(model: DiffusionModel, name: str, settings: InversionSettings
           ) -> Iterator[InversionSettings]:
    """The model changed as `name` says for the block (and put back after), and the inversion
    settings to run it with."""
    unet = model.unet
    if name == "no channels-last":
        unet.to(memory_format=torch.contiguous_format)
    elif name == "fused QKV":
        unet.fuse_qkv_projections()
    elif name == "torch.compile":
        unet.compile(dynamic=False)
    elif name.endswith(" steps"):
        settings = replace(settings, steps=int(name.split()[0]))
    elif name != "as shipped":
        raise ValueError(f"unknown option {name!r}; use one of {', '.join(OPTIONS)}")
    try:
        yield settings
    finally:
        if name == "no channels-last" and model.device.type == "cuda":
            unet.to(memory_format=torch.channels_last)
        elif name == "fused QKV":
            unet.unfuse_qkv_projections()
        elif name == "torch.compile":
            unet._compiled_call_impl = None  # what Module.compile set: back to eager


def photo_to_result(model: DiffusionModel, settings: InversionSettings, repeats: int) -> dict:
    """One edit as a user waits for it: direct inversion of the photo, then the edit."""
    from bench.speed import EDIT_COMMAND, speed_photo

    image, text, _ = speed_photo()
    editor = Editor(model, None, settings, EditSettings(), "direct")
    timing, _ = time_runs(lambda: editor.run(editor.prepare(image, text), EDIT_COMMAND),
                          repeats, model.device, unet=model.unet)
    return {"label": f"direct inversion + one edit, {settings.steps} steps", **timing.as_dict()}


def run_gpu_options(model: DiffusionModel, settings: InversionSettings, repeats: int,
                    options: tuple[str, ...] = OPTIONS, log: Callable[[str], None] = print
                    ) -> dict[str, dict]:
    """`photo_to_result` as shipped and with each option, every one on the same model."""
    found = {}
    for name in options:
        log(f"gpu: photo to result, {name}")
        with option(model, name, settings) as changed:
            found[name] = photo_to_result(model, changed, repeats)
    return found


def learn_end_to_end(model: DiffusionModel, steps: int | None = None) -> dict:
    """One concept learned as the worker learns it (the default settings, early stop included;
    `steps` caps it), with its time and peak memory. Random weights decide when early stopping
    ends it, so the step count is reported beside the time."""
    concept = ConceptSettings() if steps is None else replace(ConceptSettings(), steps=steps)
    with PeakMemory(model.device) as memory:
        start = time.perf_counter()
        _, learned = learn_reserved(model, "creature", concept)
        seconds = time.perf_counter() - start
    return {"label": f"learning a word from the creature samples, {learned.steps} steps "
                     f"({learned.reason})", "seconds": round(seconds, 3),
            "steps": learned.steps, **memory.as_dict()}


def run_gpu(plan: Plan, dtype_name: str = "fp16", log: Callable[[str], None] = print,
            compile_unet: bool = False) -> dict:
    """The GPU section of the report; {'skipped': why} when there is no CUDA device.

    The model gets the worker's GPU speed-ups (`engine.acceleration.accelerate`: channels-last,
    and torch.compile of the UNet with `compile_unet`)."""
    if not torch.cuda.is_available():
        message = ("skipped: no CUDA GPU here (torch.cuda.is_available() is False); run "
                   "`python -m bench --gpu --only gpu` on a machine with one")
        log(f"gpu: {message}")
        return {"skipped": message}
    device = torch.device("cuda")
    dtype = DTYPES[dtype_name]
    log(f"gpu: building a random SD 1.5-sized model on {torch.cuda.get_device_name(device)}")
    start = time.perf_counter()
    model = accelerate(build_sd15(1.0, 512, device, dtype), compile_unet)
    built = time.perf_counter() - start
    settings = InversionSettings()
    if plan.speed_steps:
        settings = replace(settings, steps=plan.speed_steps)
    stages = run_gpu_stages(model, settings, ti_steps=3 if plan.name == "quick" else 10,
                            repeats=plan.slow_repeats, log=log)
    options = run_gpu_options(model, settings, plan.slow_repeats,
                              OPTIONS[:2] if plan.name == "quick" else OPTIONS, log)
    log("gpu: one word learned end to end")
    stages["learn_end_to_end"] = learn_end_to_end(model, plan.ti_steps)
    properties = torch.cuda.get_device_properties(device)
    return {"device": torch.cuda.get_device_name(device), "dtype": dtype_name,
            "device_memory_gb": round(properties.total_memory / 2**30, 1),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "cuda": torch.version.cuda, "compiled": compile_unet, "channels_last": True,
            "image_size": model.image_size, "parameters": parameter_counts(model),
            "build_seconds": round(built, 2), "inversion_settings": asdict(settings),
            "stages": stages, "options": options}
