"""People end to end: a group teaches the bot a person from drawn portraits and adds her to a
group photo by replying `/add anna`, then swaps her in for the man on the left; the real bot and
worker processes on the tiny model, through our local Bot API server, in privacy mode.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.helpers import BOT_USERNAME, quick_stack
from tests.pictures import group_photo, portrait

pytestmark = pytest.mark.slow  # the real bot and worker processes
pytest.importorskip("cv2")  # the worker's face detector (the `faces` extra, also in dev)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_group_learns_a_person_and_adds_her_to_its_group_photo(tiny_model_dir, tmp_path):
    async with quick_stack(tiny_model_dir, tmp_path / "data") as (service, tg):
        alice, bob = await tg.user("Alice"), await tg.user("Bob")
        group = (await tg.create_group("Friends", [alice.id, bob.id]))["id"]
        alice_g, bob_g = alice.in_chat(group), bob.in_chat(group)

        await alice_g.say(f"/learn@{BOT_USERNAME} anna person")
        prompt = await alice_g.wait_reply(contains="Reply to this message", timeout=60)
        portraits = [portrait((128 + dx, 100), 70, background=bg) for dx, bg in
                     ((0, (90, 140, 200)), (10, (200, 200, 120)), (-10, (120, 190, 120)))]
        await tg.send_album(group, alice.id, [png(p) for p in portraits],
                            reply_to=prompt.message_id)
        learned = await tg.wait_for(group, contains="I learned", photo=True, timeout=600)
        assert '"anna"' in learned.text
        # the worker learned her from her head and shoulders, found by its face detector
        await service.processes["worker"].wait_for_line(
            "learned a person in 12 steps, its loss focused on head and shoulders", timeout=60)

        photo = await bob_g.send_photo(png(group_photo()))
        command = await alice_g.say("/add anna | a photo of two men", reply_to=photo)
        added = await tg.wait_for(group, photo=True, after=command.message_id, timeout=600)
        assert added.reply_to_message_id in (photo.message_id, command.message_id)

        swap = await bob_g.say(f"/replace@{BOT_USERNAME} the man on the left with anna "
                               "| a man and a man", reply_to=photo)
        swapped = await tg.wait_for(group, photo=True, after=swap.message_id, timeout=600)
        assert swapped.reply_to_message_id in (photo.message_id, swap.message_id)
        picture = Image.open(io.BytesIO(await tg.download(swapped.photo_file_id)))
        assert picture.size[0] >= 256
