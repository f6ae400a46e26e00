"""Image fidelity measured the same way by tests, the model card and the benchmarks."""

from __future__ import annotations

import numpy as np
from PIL import Image


def psnr(a: Image.Image, b: Image.Image, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two 8-bit images, over the pixels where `mask` is True (default: all)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    mse = float(np.mean((x - y) ** 2)) if x.size else 0.0
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))
