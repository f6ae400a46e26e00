"""Shared fixtures: tiny random SD models saved as diffusers folders, loaded by the engine."""

from __future__ import annotations

import os

import pytest

# Tiny models run fastest on one thread, and subprocesses (bot, worker, CLI) inherit this;
# several processes each spinning two OpenMP threads on a two-core machine crawl.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tests.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from engine.model import load_model

    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_vpred_model(tmp_path_factory):
    from engine.model import load_model
    from tests.tiny_model import make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny-sd-v"), prediction_type="v_prediction",
                             text_width=48, seed=1)
    return load_model(folder, device="cpu")
