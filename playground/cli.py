"""``oneword playground``: the chat page (default) or the scripted story (``--script``).

    oneword playground [--port 8080] [--data-dir DIR] [--model M]
    oneword playground --script [--out DIR]

Both start the same stack (local Telegram, bot, worker; :mod:`playground.harness`) with short
learning and inversion settings, so that a CPU gets through the story in minutes. Ctrl-C stops
everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

import engine
from botapi import ControlClient
from playground import transcript
from playground.harness import LocalStack, StackConfig, StackError
from playground.options import DEMO_INVERSION_STEPS, DEMO_LEARN_STEPS
from playground.samples import load_samples
from playground.story import PERSON, Story
from playground.web import create_people, make_app

BUNDLED_MODEL = Path(engine.__file__).resolve().parent / "models" / "sticker-world"


def resolve_model(model: str | None) -> str:
    """The model the worker should load: the one given, else the bundled sticker-world model.

    The bundled model is trained in the background while OneWord is developed and may not be
    there yet; say so plainly instead of letting the worker fail with a loader traceback.
    """
    if model:
        return model
    if not (BUNDLED_MODEL / "model_index.json").is_file():
        raise StackError(
            f"the bundled model is missing: {BUNDLED_MODEL} has no model_index.json.\n"
            "It is written by its training run (python -m world.train, see "
            "world/train.py); wait for its first export, or pass --model with a "
            "diffusers Stable Diffusion folder.")
    return str(BUNDLED_MODEL)


def run(args: argparse.Namespace) -> int:
    """Run the playground as the arguments say; returns the exit code."""
    try:
        model = resolve_model(args.model)
    except StackError as exc:
        print(f"oneword playground: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    learn = args.learn_steps or int(os.environ.get("ONEWORD_LEARN_STEPS", DEMO_LEARN_STEPS))
    invert = args.inversion_steps or int(os.environ.get("ONEWORD_INVERSION_STEPS",
                                                        DEMO_INVERSION_STEPS))
    with _data_dir(args.data_dir) as data_dir:
        config = StackConfig(data_dir=data_dir, model=model,
                             log_dir=out / "logs" if args.script else None,
                             env={"ONEWORD_LEARN_STEPS": str(learn),
                                  "ONEWORD_INVERSION_STEPS": str(invert)})
        print(f"OneWord playground: model {model}, {learn} learning steps, {invert} inversion "
              f"steps, data in {data_dir}", flush=True)
        started = time.monotonic()
        try:
            if args.script:
                _clear_previous(out)
            with LocalStack(config) as stack:
                if args.script:
                    return asyncio.run(play_script(stack, out, started))
                code = asyncio.run(serve(stack, args.port))
            print("stopped.", flush=True)
            return code
        except StackError as exc:
            print(f"oneword playground: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopped.", flush=True)
            return 130


@contextlib.contextmanager
def _data_dir(given: str | None) -> Iterator[Path]:
    if given:
        yield Path(given)
        return
    with tempfile.TemporaryDirectory(prefix="oneword-playground-") as folder:
        yield Path(folder)


# ----------------------------------------------------------------------------- the page


async def serve(stack: LocalStack, port: int) -> int:
    """Serve the chat page for a started stack until Ctrl-C (or SIGTERM) or a service dies."""
    async with ControlClient(stack.url) as client:
        people = await create_people(client)

    def status() -> dict[str, bool]:
        return {"worker_ready": stack.worker_ready}

    runner = web.AppRunner(make_app(stack.url, people, load_samples(), status),
                           access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as exc:
            raise StackError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                             f"try another --port") from exc
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        print(f"\nPlayground on {url}  (Ctrl-C stops it)\n"
              f"The worker is loading the model; the page says when it is ready.", flush=True)
        return await _until_stopped(stack)
    finally:
        await runner.cleanup()


async def _until_stopped(stack: LocalStack) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    announced = False
    while not stopping.is_set():
        stack.check()
        if stack.worker_ready and not announced:
            announced = True
            print("The worker is ready: learning and editing work now.", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 1.0)
    print("\nstopping...", flush=True)
    return 0


# ---------------------------------------------------------------------------- the story


async def play_script(stack: LocalStack, out: Path, started: float) -> int:
    """Play the story against a started stack and write the transcript into ``out``, also
    when the story stops early (a step timed out, a service died): it shows how far it got."""
    config = stack.config
    print(f"The bot is up (logs in {config.log_dir}); the worker is loading the model.\n",
          flush=True)
    stopped_by: Exception | None = None
    async with ControlClient(stack.url) as client:
        story = Story(client, load_samples())
        try:
            await story.play(check=stack.check)
        except (TimeoutError, StackError) as exc:
            stopped_by = exc
        result = story.result
        elapsed = round(time.monotonic() - started)
        notes = {"model": config.model,
                 "learning steps": int(config.env["ONEWORD_LEARN_STEPS"]),
                 "inversion steps": int(config.env["ONEWORD_INVERSION_STEPS"]),
                 "wall time": f"{elapsed} s"}
        written = await transcript.collect(client, result.chats, out, "OneWord: the story",
                                           notes)
    json_path, html_path = transcript.write(written, out)
    transcript.picture(written, out)
    transcript.people_picture(written, out, f"/add {PERSON}")
    print(f"The story took {elapsed} s. Step times (s): "
          + ", ".join(f"{k} {v}" for k, v in result.timings.items()))
    print(f"Transcript: {html_path.resolve()}\n            {json_path.resolve()}")
    if result.failures:
        print("Steps that did not get the hoped-for answer:\n"
              + "\n".join(f"  - {f}" for f in result.failures))
    if stopped_by is not None:
        print(f"oneword playground: the story stopped early: {stopped_by}\n"
              f"(the services' logs are in {config.log_dir})", file=sys.stderr)
    return 1 if result.failures or stopped_by is not None else 0


def _clear_previous(out: Path) -> None:
    """Remove an earlier run's transcript, pictures and logs from ``out``."""
    for name in ("transcript.json", "transcript.html", "picture.png", "people.png"):
        (out / name).unlink(missing_ok=True)
    for folder in ("files", "logs"):
        shutil.rmtree(out / folder, ignore_errors=True)
