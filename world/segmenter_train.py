"""Train the bundled model's subject segmenter on the renderer's exact masks, within a budget.

    nice -n 19 python -m world.segmenter_train --minutes 30        # resumes from --run-dir
    python -m world.segmenter_train --export-only                  # re-export the checkpoint

A pool of random scenes of the checker's 'train' split (styled ones included) is rendered once
at 64x64 with the union of its objects' masks; with the model's VAE, a share of each batch is
the same pictures after a VAE round trip, which is what the model's own pictures look like (the
pack's stickers are generated). Batches are degraded on the fly (blur, resampling, shifts,
colour jitter, noise) and flipped. The loss is per-pixel cross-entropy plus a soft Dice term,
so small objects count as much as big ones. State lives in the run dir (outside the
repository); the export writes the network and its measured IoU into the model folder's
`segmenter/` and names it in `segmenter.json`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from world.checker import (
    DEFAULT_FOLDER,
    IMAGE_SIZE,
    degrade,
    split_scene,
    uint8_to_tensor,
    vae_round_trip,
)
from world.render import render, union_mask
from world.segmenter import SEGMENTER_FOLDER, SegmenterConfig, SegmenterNet, save

MODEL_FOLDER = DEFAULT_FOLDER.parent  # the bundled model (DEFAULT_FOLDER is its captioner)


@dataclass
class SegmenterTrainConfig:
    run_dir: Path = Path("runs/segmenter")
    model_folder: Path = MODEL_FOLDER
    pool: int = 6000
    style_probability: float = 0.4
    vae_fraction: float = 0.4  # share of each batch drawn from the VAE round trips
    batch: int = 48
    lr: float = 3e-3
    min_lr: float = 1e-4
    minutes: float = 30.0  # training time over all sessions; the LR schedule follows it
    checkpoint_minutes: float = 2.0
    eval_scenes: int = 300
    seed: int = 0


def log(run_dir: Path, message: str) -> None:
    """Print and append to <run>/log.txt."""
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    with open(run_dir / "log.txt", "a") as f:
        f.write(line + "\n")


def render_pool(split: str, count: int, style_probability: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 64, 64, 3) uint8 pictures of a split's scenes and (N, 64, 64) float masks of where
    any object is."""
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    masks = np.empty((count, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for i in range(count):
        rendering = render(split_scene(split, i, style_probability), IMAGE_SIZE)
        images[i] = np.asarray(rendering.image)
        masks[i] = union_mask(rendering.masks, IMAGE_SIZE)
    return images, masks


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy plus soft Dice per picture."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def mean_iou(net: SegmenterNet, images: np.ndarray, masks: np.ndarray) -> float:
    """Mean IoU at 64x64 of the thresholded prediction with the thresholded truth."""
    net.eval()
    ious = []
    for start in range(0, len(images), 200):
        pred = net(uint8_to_tensor(images[start:start + 200]))[:, 0] > 0
        truth = torch.from_numpy(masks[start:start + 200]) > 0.5
        inter = (pred & truth).sum((1, 2)).float()
        union = (pred | truth).sum((1, 2)).float().clamp(min=1)
        ious.extend((inter / union).tolist())
    net.train()
    return float(np.mean(ious))


class SegmenterTrainer:
    """Resumable training: the pool, the network and the optimiser, checkpointed to run_dir."""

    def __init__(self, cfg: SegmenterTrainConfig):
        self.cfg = cfg
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.net_config = SegmenterConfig()
        self.net = SegmenterNet(self.net_config)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.step, self.elapsed = 0, 0.0
        self.checkpoint = cfg.run_dir / "checkpoint.pt"
        if self.checkpoint.is_file():
            state = torch.load(self.checkpoint, weights_only=False)
            self.net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["opt"])
            self.step, self.elapsed = state["step"], state["elapsed"]
            log(cfg.run_dir, f"resumed at step {self.step}, {self.elapsed / 60:.1f} min done")

    def pools(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rendered pool, its VAE round trips and masks, cached in the run dir."""
        cache = self.cfg.run_dir / f"pool-{self.cfg.pool}.npz"
        if cache.is_file():
            data = np.load(cache)
            return data["images"], data["round_trips"], data["masks"]
        images, masks = render_pool("train", self.cfg.pool, self.cfg.style_probability)
        log(self.cfg.run_dir, f"rendered {len(images)} scenes; VAE round trips next")
        round_trips = vae_round_trip(images, self.cfg.model_folder)
        np.savez(cache, images=images, round_trips=round_trips, masks=masks)
        return images, round_trips, masks

    def learning_rate(self) -> float:
        done = min(1.0, self.elapsed / (self.cfg.minutes * 60))
        return self.cfg.min_lr + 0.5 * (self.cfg.lr - self.cfg.min_lr) * (1 + np.cos(np.pi * done))

    def save_checkpoint(self) -> None:
        torch.save({"net": self.net.state_dict(), "opt": self.opt.state_dict(),
                    "step": self.step, "elapsed": self.elapsed}, self.checkpoint)

    def train(self) -> None:
        """Train until the time budget is spent, checkpointing every few minutes."""
        cfg = self.cfg
        images, round_trips, masks = self.pools()
        eval_images, eval_masks = render_pool("eval", cfg.eval_scenes, cfg.style_probability)
        gen = torch.Generator().manual_seed(cfg.seed + self.step)
        rng = np.random.default_rng(cfg.seed + self.step)
        last_checkpoint = time.monotonic()
        self.net.train()
        while self.elapsed < cfg.minutes * 60:
            start = time.monotonic()
            index = rng.integers(0, len(images), cfg.batch)
            from_vae = rng.random(cfg.batch) < cfg.vae_fraction
            batch = np.where(from_vae[:, None, None, None], round_trips[index], images[index])
            x = degrade(uint8_to_tensor(batch), gen, clean_fraction=0.3)
            y = torch.from_numpy(masks[index])[:, None]
            if rng.random() < 0.5:
                x, y = x.flip(3), y.flip(3)
            for group in self.opt.param_groups:
                group["lr"] = self.learning_rate()
            loss = segmentation_loss(self.net(x), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
            self.elapsed += time.monotonic() - start
            if self.step % 50 == 0:
                log(cfg.run_dir, f"step {self.step} loss {loss.item():.4f} "
                                 f"lr {self.learning_rate():.5f} {self.elapsed / 60:.1f} min")
            if time.monotonic() - last_checkpoint > cfg.checkpoint_minutes * 60:
                self.save_checkpoint()
                iou = mean_iou(self.net, eval_images, eval_masks)
                log(cfg.run_dir, f"checkpoint; eval IoU {iou:.4f}")
                last_checkpoint = time.monotonic()
        self.save_checkpoint()

    def export(self) -> float:
        """Write the network into the model folder with its eval IoU; returns that IoU."""
        eval_images, eval_masks = render_pool("eval", self.cfg.eval_scenes,
                                              self.cfg.style_probability)
        iou = mean_iou(self.net, eval_images, eval_masks)
        save(self.net, self.net_config, self.cfg.model_folder / SEGMENTER_FOLDER,
             {"steps": self.step, "minutes": round(self.elapsed / 60, 1),
              "eval_iou_64px": round(iou, 4), "eval_scenes": self.cfg.eval_scenes})
        log(self.cfg.run_dir, f"exported step {self.step}: eval IoU {iou:.4f}")
        return iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=SegmenterTrainConfig.run_dir)
    parser.add_argument("--model-folder", type=Path, default=MODEL_FOLDER)
    parser.add_argument("--minutes", type=float, default=SegmenterTrainConfig.minutes)
    parser.add_argument("--pool", type=int, default=SegmenterTrainConfig.pool)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--export-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trainer = SegmenterTrainer(SegmenterTrainConfig(
        run_dir=args.run_dir, model_folder=args.model_folder, minutes=args.minutes,
        pool=args.pool))
    if not args.export_only:
        trainer.train()
    trainer.export()


if __name__ == "__main__":
    main()
