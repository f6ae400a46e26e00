"""Train the sticker-world checker on rendered scenes, resumably, within a time budget.

    nice -n 10 python -m world.train_checker                   # resumes from the run dir
    python -m world.train_checker --export-only                # re-export the checkpoint
    python -m world.train_checker --run-dir runs/checker-vae \
        --set init_from=engine/models/sticker-world/captioner vae_model=engine/models/sticker-world

A pool of random scenes (seeds of the 'train' split, disjoint from the 'eval' split used for
measurement) is rendered once into memory, with a few reserved concepts mixed in so that the
checker recognises them reliably. Batches are JPEG-compressed and degraded on the fly (blur,
resampling, shifts, colour jitter, noise) so the checker also reads what a diffusion model's VAE
gives back; with `vae_model` the pool also goes once through that model's VAE and a share of
each batch (`vae_fraction`) is drawn from those round trips, which is what generated pictures
really look like (the hand-made degradations alone left eyes and mouths unread after a round
trip; `init_from` fine-tunes a shipped captioner that way). State lives in the run dir
(outside the repository); the result is written as `model.safetensors` (float16) +
`config.json` into `--out`, the captioner folder of the bundled model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from world.checker import (
    CHARACTER_FIELDS,
    CONFIG_FILE,
    DEFAULT_FOLDER,
    IGNORE,
    IMAGE_SIZE,
    SCENE_FIELDS,
    SLOT_FIELDS,
    WEIGHTS_FILE,
    Checker,
    CheckerNet,
    NetConfig,
    degrade,
    evaluate,
    jpeg,
    print_report,
    scene_labels,
    split_scene,
    uint8_to_tensor,
    vae_round_trip,
)
from world.render import render
from world.scene import (
    Scene,
    near_miss_creature,
    near_miss_object,
    near_miss_person,
    random_group,
    reserved_creature,
    reserved_object,
    reserved_person,
)


@dataclass
class CheckerTrainConfig:
    run_dir: str = "runs/checker"
    out: str = str(DEFAULT_FOLDER)
    seed: int = 0
    pool: int = 40000  # pre-rendered training scenes
    style_probability: float = 0.4
    reserved_probability: float = 0.03  # per scene, for each reserved creature, object, person
    near_miss_probability: float = 0.03  # the same for each one with one part changed
    group_probability: float = 0.2  # share of scenes that are group photos (2-3 faces), so
    # faces and their identity parts are well represented (a random scene has 1 in 8 a face)
    face_identities: bool = True  # faces with hair, glasses and beards (see scene.has_identity)
    steps: int = 8000  # training ends at this step or after budget_minutes, whichever is first
    budget_minutes: float = 20.0  # training time over all sessions; the LR schedule follows it
    batch: int = 128
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 1e-4
    hue_weight: float = 1.0
    detail_weight: float = 0.5  # character features and pattern colour: slower, noisier tasks
    jpeg_probability: float = 0.3
    clean_fraction: float = 0.25
    degrade_strength: float = 1.0
    bf16: bool = True  # bfloat16 autocast: about twice as fast on CPUs with AVX-512 BF16
    checkpoint_minutes: float = 3.0
    eval_scenes: int = 500  # measured at export, recorded in config.json
    vae_model: str = ""  # a diffusers model folder: its VAE's round trips join the batches
    vae_fraction: float = 0.5  # share of each batch taken from the round trips (with vae_model)
    init_from: str = ""  # an exported captioner folder to start from (fine-tuning)


def log(run_dir: Path, message: str) -> None:
    """Print and append to <run>/log.txt."""
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(run_dir / "log.txt", "a") as f:
        f.write(line + "\n")


# ---------------------------------------------------------------------------------------------
# Data


def training_scene(index: int, cfg: CheckerTrainConfig) -> Scene:
    """A 'train' split scene or, with group_probability, a group photo, sometimes with a
    reserved creature, object or person swapped in, or one of their near misses (so that the
    checker learns the difference, not a prior for them). The group and the person draw from
    a stream of their own or after the older draws, so every swap an older pool made stays."""
    scene = split_scene("train", index, cfg.style_probability, cfg.face_identities)
    if random.Random(f"checker-group-{index}").random() < cfg.group_probability:
        scene = random_group(random.Random(f"checker-group-scene-{index}"))
    objects = list(scene.objects)
    rng = random.Random(f"checker-reserved-{index}")
    for make in (reserved_creature, reserved_object, reserved_person):
        if rng.random() < cfg.reserved_probability:
            i = rng.randrange(len(objects))
            objects[i] = replace(make(objects[i].size, objects[i].position),
                                 jitter=objects[i].jitter)
    rng = random.Random(f"checker-near-miss-{index}")  # a stream of its own: older pools stay
    for near_miss in (near_miss_creature, near_miss_object, near_miss_person):
        if rng.random() < cfg.near_miss_probability:
            i = rng.randrange(len(objects))
            objects[i] = replace(near_miss(rng, objects[i].size, objects[i].position),
                                 jitter=objects[i].jitter)
    return replace(scene, objects=tuple(objects))


def build_pool(cfg: CheckerTrainConfig) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Render the training pool: (N, 64, 64, 3) uint8 images and stacked labels per field."""
    images = np.empty((cfg.pool, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels: dict[str, list[np.ndarray]] = {}
    for i in range(cfg.pool):
        scene = training_scene(i, cfg)
        images[i] = np.asarray(render(scene, IMAGE_SIZE).image)
        for name, value in scene_labels(scene).items():
            labels.setdefault(name, []).append(value)
    return images, {name: torch.from_numpy(np.stack(v)) for name, v in labels.items()}


ROUND_TRIPS_FILE = "round_trips.npz"


def kept_round_trips(images: np.ndarray, vae_model: str, path: Path) -> np.ndarray:
    """The pool's VAE round trips, kept in the run dir: a resumed session finds them there
    (for the same pool and VAE) instead of spending a quarter of an hour on them again."""
    key = f"{vae_model}:{hashlib.sha256(images.tobytes()).hexdigest()}"
    if path.exists():
        kept = np.load(path)
        if str(kept["key"]) == key:
            return kept["round_trips"]
    round_trips = vae_round_trip(images, vae_model)
    with open(path.with_suffix(".tmp"), "wb") as f:
        np.savez(f, key=np.array(key), round_trips=round_trips)
    path.with_suffix(".tmp").replace(path)
    return round_trips


# ---------------------------------------------------------------------------------------------
# Loss


def checker_loss(out: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                 hue_weight: float, detail_weight: float
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of cross-entropies over every field that applies, plus the hue regression.

    Returns the total and the unweighted parts (for logging).
    """
    parts: dict[str, torch.Tensor] = {}
    for name in SCENE_FIELDS:
        parts[name] = F.cross_entropy(out[name], labels[name])
    for name in SLOT_FIELDS:
        target = labels[name].reshape(-1)
        logits = out[name].reshape(target.shape[0], -1)
        count = (target != IGNORE).sum().clamp(min=1)
        parts[name] = F.cross_entropy(logits, target, ignore_index=IGNORE,
                                      reduction="sum") / count
    mask = labels["hue_mask"]
    hue_err = (out["hue"] - labels["hue"]).square().sum(-1)
    parts["hue"] = (hue_err * mask).sum() / mask.sum().clamp(min=1)
    weights = {name: detail_weight for name in CHARACTER_FIELDS + ("pattern_colour",)}
    weights["hue"] = hue_weight
    total = sum(weights.get(name, 1.0) * part for name, part in parts.items())
    return total, {k: v.item() for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# Training


class CheckerTrainer:
    """The network, optimiser, pool and random states; `run` trains until done or out of time."""

    def __init__(self, cfg: CheckerTrainConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.net_cfg = NetConfig()
        self.net = CheckerNet(self.net_cfg, {k: len(v) for k, v in SCENE_FIELDS.items()},
                              {k: len(v) for k, v in SLOT_FIELDS.items()})
        self.net = self.net.to(memory_format=torch.channels_last)
        decay = [p for p in self.net.parameters() if p.ndim > 1]
        no_decay = [p for p in self.net.parameters() if p.ndim <= 1]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.step = 0
        self.seconds = 0.0  # training time spent over all sessions
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.images: np.ndarray | None = None
        self.round_trips: np.ndarray | None = None
        self.started_from: dict | None = None  # the training record of `init_from`, if any
        self.labels: dict[str, torch.Tensor] = {}
        self.load()

    def state_path(self) -> Path:
        return self.run_dir / "state.pt"

    def save(self) -> None:
        state = {"config": asdict(self.cfg), "step": self.step, "seconds": self.seconds,
                 "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                 "gen": self.gen.get_state(), "rng": self.rng.getstate(),
                 "started_from": self.started_from}
        tmp = self.state_path().with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.state_path())

    def load(self) -> None:
        if not self.state_path().exists():
            if self.cfg.init_from:
                fresh = self.start_from(Checker.load(self.cfg.init_from).net.state_dict())
                config = json.loads((Path(self.cfg.init_from) / CONFIG_FILE).read_text())
                self.started_from = config.get("training")
                log(self.run_dir, f"starting from the captioner in {self.cfg.init_from}"
                    + (f"; new: {', '.join(fresh)}" if fresh else ""))
            return
        state = torch.load(self.state_path(), weights_only=False)
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.gen.set_state(state["gen"])
        self.rng.setstate(state["rng"])
        self.started_from = state.get("started_from")
        log(self.run_dir, f"resumed at step {self.step} ({self.seconds / 60:.1f} min trained)")

    def start_from(self, shipped: dict[str, torch.Tensor]) -> list[str]:
        """Load every tensor of a shipped checker whose name and shape this network shares;
        the rest (heads of fields added since, such as a face's identity parts) keep their
        fresh initialisation. Returns the names left fresh."""
        own = self.net.state_dict()
        shared = {k: v for k, v in shipped.items() if k in own and own[k].shape == v.shape}
        self.net.load_state_dict(shared, strict=False)
        return [k for k in own if k not in shared]

    def progress(self) -> float:
        """Fraction of training done: by steps or by training time, whichever is further.

        Following time as well as steps lets the schedule anneal fully within a time budget on
        a machine of unknown (and shared) speed; both are restored on resume.
        """
        by_time = self.seconds / (60 * self.cfg.budget_minutes)
        return min(1.0, max(self.step / self.cfg.steps, by_time))

    def lr_now(self) -> float:
        """Linear warmup over the first steps, then cosine decay to min_lr with progress."""
        cfg = self.cfg
        if self.step < cfg.warmup:
            return cfg.lr * (self.step + 1) / cfg.warmup
        t = self.progress()
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))

    def batch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A random degraded batch from the pool and its labels."""
        idx = torch.randint(len(self.images), (self.cfg.batch,), generator=self.gen)
        pixels = self.images[idx.numpy()]
        if self.round_trips is not None:
            use = (torch.rand(self.cfg.batch, generator=self.gen) < self.cfg.vae_fraction).numpy()
            pixels = np.where(use[:, None, None, None], self.round_trips[idx.numpy()], pixels)
        pixels = jpeg(pixels, self.rng, self.cfg.jpeg_probability)
        x = degrade(uint8_to_tensor(pixels), self.gen, self.cfg.degrade_strength,
                    self.cfg.clean_fraction)
        return (x.contiguous(memory_format=torch.channels_last),
                {name: value[idx] for name, value in self.labels.items()})

    def train_step(self) -> dict[str, float]:
        self.net.train()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_now()
        x, labels = self.batch()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            out = self.net(x)
        out = {k: v.float() for k, v in out.items()}
        loss, parts = checker_loss(out, labels, self.cfg.hue_weight, self.cfg.detail_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return parts

    def run(self, minutes: float) -> None:
        start = time.time()
        deadline = start + minutes * 60
        if self.progress() < 1:
            self.images, self.labels = build_pool(self.cfg)
            log(self.run_dir, f"rendered {self.cfg.pool} scenes in {time.time() - start:.0f}s")
            if self.cfg.vae_model:
                self.round_trips = kept_round_trips(self.images, self.cfg.vae_model,
                                                    self.run_dir / ROUND_TRIPS_FILE)
                log(self.run_dir, f"sent them through {self.cfg.vae_model}'s VAE "
                    f"({time.time() - start:.0f}s in all)")
        last_save, last_tick = time.time(), time.time()
        history: list[dict[str, float]] = []
        while self.progress() < 1 and time.time() < deadline:
            history.append(self.train_step())
            now = time.time()
            self.seconds += now - last_tick
            last_tick = now
            if self.step % 50 == 0:
                mean = {k: np.mean([h[k] for h in history]) for k in history[0]}
                worst = ", ".join(f"{k} {v:.3f}" for k, v in sorted(
                    mean.items(), key=lambda kv: -kv[1])[:4])
                log(self.run_dir, f"step {self.step} loss {sum(mean.values()):.4f} ({worst}) "
                    f"lr {self.lr_now():.2e} {self.seconds / self.step:.2f}s/step "
                    f"{100 * self.progress():.0f}%")
                history.clear()
            if now - last_save > self.cfg.checkpoint_minutes * 60:
                self.save()
                last_save = now
        self.save()
        self.export(Path(self.cfg.out))

    def export(self, folder: Path) -> None:
        """Write float16 weights + config.json, then measure on held-out scenes."""
        folder.mkdir(parents=True, exist_ok=True)
        self.net.eval()
        state = {k: (v.detach().half() if v.is_floating_point() else v).contiguous()
                 for k, v in self.net.state_dict().items()}
        save_file(state, folder / WEIGHTS_FILE)
        (folder / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600; the folder is shipped
        config = {"net": asdict(self.net_cfg), "image_size": IMAGE_SIZE,
                  "scene_fields": SCENE_FIELDS, "slot_fields": SLOT_FIELDS,
                  "training": {"steps": self.step, "of_steps": self.cfg.steps,
                               "minutes": round(self.seconds / 60, 1),
                               "config": {k: v for k, v in asdict(self.cfg).items()
                                          if k not in ("run_dir", "out")}}}
        if self.started_from:
            config["training"]["started_from"] = self.started_from
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        if self.cfg.eval_scenes:
            readings = [("eval", None)]
            if self.cfg.vae_model:
                readings.append(("eval_through_vae", self.cfg.vae_model))
            exported = Checker.load(folder)
            for key, through_vae in readings:
                report = evaluate(exported, self.cfg.eval_scenes, through_vae=through_vae)
                print_report(report)
                config["training"][key] = {
                    "scenes": self.cfg.eval_scenes, "scene_exact": report["scene_exact"],
                    "caption_exact": report["caption_exact"],
                    "fields": {k: round(v, 4) for k, (v, _) in report["fields"].items()}}
            (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        log(self.run_dir, f"exported step {self.step} to {folder}")


def make_config(args: argparse.Namespace) -> CheckerTrainConfig:
    """The run's config: the one stored in its checkpoint (if resuming), then the options given.

    Options left out keep the stored (or default) values, so a resumed or re-exported run
    records what it was trained with.
    """
    cfg = CheckerTrainConfig(run_dir=args.run_dir)
    state_path = Path(args.run_dir) / "state.pt"
    if state_path.exists():
        stored = torch.load(state_path, weights_only=False)["config"]
        cfg = CheckerTrainConfig(**{**stored, "run_dir": args.run_dir,
                                    "out": CheckerTrainConfig.out})
    given = {"out": args.out, "steps": args.steps, "pool": args.pool,
             "budget_minutes": args.budget_minutes}
    for key, value in given.items():
        if value is not None:
            setattr(cfg, key, value)
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(cfg, key))
        setattr(cfg, key, value.lower() in ("1", "true", "yes") if kind is bool else kind(value))
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0,
                        help="wall-clock limit of this session (it resumes where it stopped)")
    parser.add_argument("--run-dir", default=CheckerTrainConfig.run_dir)
    parser.add_argument("--out",
                        help=f"captioner folder to write (default {CheckerTrainConfig.out})")
    parser.add_argument("--steps", type=int, help=f"at most (default {CheckerTrainConfig.steps})")
    parser.add_argument("--budget-minutes", type=float, help="training time over all sessions "
                        f"(default {CheckerTrainConfig.budget_minutes:g})")
    parser.add_argument("--pool", type=int,
                        help=f"scenes rendered (default {CheckerTrainConfig.pool})")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override any CheckerTrainConfig field, e.g. --set lr=1e-3 batch=64")
    parser.add_argument("--export-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = make_config(args)
    trainer = CheckerTrainer(cfg)
    if args.export_only:
        trainer.export(Path(cfg.out))
    else:
        trainer.run(args.minutes)


if __name__ == "__main__":
    main()
