"""Shared fixtures: tiny random SD models saved as diffusers folders, loaded by the engine."""

from __future__ import annotations

import os

import pytest

# Tiny models run fastest on one thread, and subprocesses (bot, worker, CLI) inherit this;
# several processes each spinning two OpenMP threads on a two-core machine crawl.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run fastest on one thread, and a busy machine's cores are not ours to take
    (OMP_NUM_THREADS above covers subprocesses; this covers a torch imported before it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
async def server():
    """Our local Bot API server (botapi/), one per test; a module may override it."""
    from botapi import BotApiServer

    async with BotApiServer() as srv:
        yield srv


@pytest.fixture
async def tg(server):
    """The control client of the test's Bot API server: users, chats, what the bot sent."""
    from botapi import ControlClient

    async with ControlClient(server.url) as client:
        yield client


@pytest.fixture
async def http():
    """A plain HTTP session for raw Bot API calls."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session


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


# ---------------------------------------------------------------------------------- PostgreSQL
# The storage suite runs on SQLite and on a real PostgreSQL server: the one named by
# ONEWORD_TEST_DATABASE_URL (CI starts one, see .ci/run), else a throwaway server started here
# from the installed PostgreSQL programs. Without PostgreSQL those tests skip, saying why;
# under CI=true they fail instead, so CI never passes without running them.


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server for this test session."""
    given = os.environ.get("ONEWORD_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from storage.pg_cluster import ThrowawayCluster, find_bin_dir

    if find_bin_dir() is None:
        reason = ("PostgreSQL not found: install Debian's postgresql package or set "
                  "ONEWORD_TEST_DATABASE_URL")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    with ThrowawayCluster() as cluster:
        yield cluster.url


@pytest.fixture
def pg_url(postgres_url):
    """A database URL whose connections see a fresh, empty schema of their own."""
    import uuid

    import psycopg

    from storage.pg_cluster import url_with_schema

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield url_with_schema(postgres_url, schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Run the test on each backend: None (the SQLite file) or a PostgreSQL URL."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")
