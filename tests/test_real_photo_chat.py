"""Real photos in the chat, on the real-model path (the tiny random SD model, whose folder has no
captioner of its own) with a captioning model configured: the real bot and worker processes
over our Bot API server. Nobody types what a photo shows, a word the caption lacks is still
edited, and a photo sent as a file comes back at its size, untouched outside the edit's mask."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from botapi.client import ControlClient
from oneword import jobs
from playground.harness import StackProcesses
from storage import JobNotFound, Storage
from tests.helpers import learn, quick_stack
from tests.pictures import test_photo
from tests.tiny_captioner import make_tiny_captioner

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(tiny_model_dir, tmp_path) -> AsyncIterator[tuple[StackProcesses, ControlClient]]:
    """The service on the tiny SD model with a tiny random BLIP captioner; a subject word
    the caption lacks is edited wherever its attention falls (the random model's attention
    points nowhere in particular, so the default would refuse it)."""
    captioner = make_tiny_captioner(tmp_path / "captioner")
    async with quick_stack(tiny_model_dir, tmp_path / "data", ONEWORD_CAPTIONER=str(captioner),
                           ONEWORD_SUBJECT_MIN_FOCUS="0") as running:
        yield running


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def edit_masks(data_dir) -> list[np.ndarray]:
    """The masks of every finished edit the worker stored, oldest first."""
    storage = await Storage.open(data_dir)
    try:
        masks, job_id = [], 1
        while True:
            try:
                job = await storage.jobs.get(job_id)
            except JobNotFound:  # past the last job
                return masks
            if job.kind == jobs.JobKind.EDIT and job.result and job.result.get("mask"):
                path = storage.files.resolve(job.result["mask"])
                masks.append(np.asarray(Image.open(path)) > 0)
            job_id += 1
    finally:
        await storage.close()


async def test_a_photo_with_only_a_command_is_edited(stack):
    service, tg = stack
    alice = await tg.user("Alice")
    await learn(tg, alice)
    for command in ("add mochi", "replace dog with mochi"):  # no "| what the photo shows"
        sent = await alice.send_photo(png(test_photo(7, 96)), caption=command)
        result = await alice.wait_reply(photo=True, after=sent.message_id, timeout=180)
        assert result.reply_to_message_id == sent.message_id, command
        assert "mochi" in (result.text or "")


async def test_a_large_photo_sent_as_a_file_comes_back_at_its_size(stack, tmp_path):
    service, tg = stack
    alice = await tg.user("Alice")
    await learn(tg, alice)
    photo = test_photo(8, (1280, 960), blobs=3)
    sent, results = [], []
    for command in ("remove man | a photo of a man sitting", "add mochi", "restyle as mochi"):
        if command.startswith("restyle"):  # of the photo just edited: its inversion is cached
            sent.append(await alice.say(command, reply_to=sent[-1]))
        else:
            sent.append(await alice.send_document(png(photo), "photo.png", "image/png",
                                                  caption=command))
        reply = await alice.wait_reply(document=True, after=sent[-1].message_id, timeout=180)
        edited = Image.open(io.BytesIO(await tg.download(reply.document["file_id"])))
        assert edited.format == "PNG" and edited.size == (1280, 960), command
        results.append(np.asarray(edited.convert("RGB")))
    *confined, restyled = results
    masks = await edit_masks(tmp_path / "data")
    assert len(masks) == 2  # the restyle has none: it may change every pixel
    original = np.asarray(photo)
    for edited, mask in zip(confined, masks, strict=True):
        assert mask.shape == (960, 1280) and 0 < mask.sum() < mask.size
        assert (edited[~mask] == original[~mask]).all()  # outside the grown mask: the photo
    for strip in (slice(0, 160), slice(-160, None)):  # beside the centre square: restyled too
        change = np.abs(restyled[:, strip].astype(float) - original[:, strip])
        assert change.mean() > 10
    storage = await Storage.open(tmp_path / "data")
    try:  # the restyled photo's centre inversion (the add's) is kept beside its whole-frame one
        assert await storage.inversions.count() == 3
    finally:
        await storage.close()
