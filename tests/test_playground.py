"""The playground (``oneword playground``): its page server, its transcript, and the scripted
story played end to end by the real bot and worker on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from botapi import BotApiServer, ControlClient
from botapi.records import MessageRecord
from cli import main as oneword_cli
from playground import cli as playground_cli
from playground import transcript
from playground.harness import StackError
from playground.samples import load_samples
from playground.story import GROUP_PHOTO, PERSON, describe, is_progress
from playground.web import create_people, make_app

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------- model and CLI


def test_missing_bundled_model_is_one_clear_message(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(playground_cli, "BUNDLED_MODEL", tmp_path / "sticker-world")
    with pytest.raises(StackError, match="bundled model is missing"):
        playground_cli.resolve_model(None)
    assert playground_cli.resolve_model("some/model") == "some/model"
    assert oneword_cli.main(["playground", "--script", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sticker-world" in err and "--model" in err and "Traceback" not in err


def test_samples_are_all_there() -> None:
    samples = load_samples()
    assert {name: len(files) for name, files in samples.sets.items()} == {
        "creature": 5, "object": 5, "style": 5, "person": 5}
    assert all(path.is_file() for files in samples.sets.values() for path in files)
    assert len(samples.scenes) == 7 and all(s.path.is_file() for s in samples.scenes)
    assert samples.scenes[0].subjects == ["circle", "star"]
    assert samples.scenes[GROUP_PHOTO].caption.count(" face ") == 2  # the story's group photo


# ------------------------------------------------------------------------- page server


@pytest.fixture
async def page() -> AsyncIterator[tuple[TestClient, BotApiServer]]:
    async with BotApiServer() as server, ControlClient(server.url) as client:
        people = await create_people(client)
        app = make_app(server.url, people, load_samples(), lambda: {"worker_ready": False})
        async with TestClient(TestServer(app)) as http:
            yield http, server


async def test_page_setup_static_files_and_samples(page) -> None:
    http, _ = page
    index = await http.get("/")
    assert index.status == 200 and "/static/app.js" in await index.text()
    for path in ("/static/app.js", "/static/style.css", "/samples/scenes/scene-1.png"):
        assert (await http.get(path)).status == 200, path
    setup = await (await http.get("/api/setup")).json()
    assert [u["first_name"] for u in setup["users"]] == ["Alice", "Bob", "Carol"]
    private, group = setup["chats"]
    assert private["type"] == "private" and len(group["members"]) == 3
    sets = {s["name"]: s for s in setup["samples"]["sets"]}
    assert list(sets) == ["creature", "object", "style", "person"]
    assert (sets["person"]["label"], sets["person"]["kind"]) == ("Person", "person")
    for path in sets["person"]["files"]:
        assert (await http.get(path)).status == 200, path
    assert setup["samples"]["scenes"][0]["subjects"] == ["circle", "star"]
    assert await (await http.get("/api/status")).json() == {"worker_ready": False}


async def test_control_api_is_proxied_both_ways(page) -> None:
    http, server = page
    setup = await (await http.get("/api/setup")).json()
    chat = setup["chats"][0]["id"]
    sent = await http.post(f"/control/chats/{chat}/messages",
                           json={"user_id": chat, "text": "/start"})
    assert (await sent.json())["result"]["message"]["text"] == "/start"
    photo = (REPO / "engine/samples/scenes/scene-1.png").read_bytes()
    form = {"user_id": str(chat), "file": photo}
    record = (await (await http.post(f"/control/chats/{chat}/photo", data=form)).json())["result"]
    file_id = record["message"]["photo"][-1]["file_id"]
    image = await http.get(f"/control/files/{file_id}")
    assert image.status == 200 and image.content_type.startswith("image/")
    history = await (await http.get(f"/control/chats/{chat}/messages")).json()
    assert len(history["result"]["messages"]) == 2
    refused = await http.post(f"/control/chats/{chat}/messages",
                              json={"user_id": chat, "text": "hi", "reply_to": 999})
    assert refused.status == 400 and "999" in (await refused.json())["error"]


# -------------------------------------------------------------------------- transcript


def _record(message_id: int, from_bot: bool, **message) -> MessageRecord:
    return MessageRecord({"chat_id": 7, "message_id": message_id, "from_bot": from_bot,
                          "deleted": False, "delivered": True, "edit_count": 0,
                          "texts": [message.get("text")], "reply_keyboard": None,
                          "message": {"message_id": message_id, "date": 0, **message}})


def test_status_lines_are_told_apart_from_answers() -> None:
    assert is_progress(_record(1, True, text="⚙️ Learning \"mochi\": ▓░░ 10%"))
    assert is_progress(_record(2, True, text="⏳ Edit \"add mochi\": you're next."))
    assert not is_progress(_record(3, True, text="Sorry, learning failed: no"))
    done = _record(4, True, caption="Done: add mochi", photo=[{"file_id": "x"}],
                   reply_markup={"inline_keyboard": [[{"text": "Why?"}]]})
    assert not is_progress(done) and describe(done) == "[photo] Done: add mochi [Why?]"


def test_transcript_html_is_self_contained_and_escaped(tmp_path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    jpeg = (REPO / "engine/samples/scenes/scene-1.png").read_bytes()
    (files / "a.png").write_bytes(jpeg)
    lines = [
        transcript.Line("OneWord", 7, 1, "Alice", False, "photo", None, ["files/a.png"],
                        album="g1"),
        transcript.Line("OneWord", 7, 2, "Alice", False, "photo", None, ["files/a.png"],
                        album="g1"),
        transcript.Line("OneWord", 7, 3, "OneWord", True, "text", "⚙️ 50%",
                        versions=["⏳ next", "⚙️ 10%"], deleted=True, reply_to=1),
        transcript.Line("OneWord", 7, 4, "OneWord", True, "text", "a <mochi> & co",
                        buttons=["Why?"], reply_to=1),
    ]
    json_path, html_path = transcript.write(transcript.Transcript("Story", lines), tmp_path)
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2 and "files/a.png" not in page
    assert "a &lt;mochi&gt; &amp; co" in page and "<mochi>" not in page
    assert "photos album" in page and "removed when the answer came" in page
    assert json.loads(json_path.read_text())["messages"][2]["deleted"] is True


def test_people_picture_shows_portrait_group_photo_and_result(tmp_path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    colours = {"portrait": (200, 0, 0), "group": (0, 200, 0), "result": (0, 0, 200),
               "other": (90, 90, 90)}
    for name, colour in colours.items():
        Image.new("RGB", (256, 256), colour).save(files / f"{name}.png")
    group, chat = "Sticker Club", -5

    def photo(message_id: int, who: str, image: str, caption: str | None = None,
              **extra) -> transcript.Line:
        return transcript.Line(group, chat, message_id, who, who == "OneWord", "photo",
                               caption, [f"files/{image}.png"], **extra)

    def text(message_id: int, who: str, words: str, **extra) -> transcript.Line:
        return transcript.Line(group, chat, message_id, who, who == "OneWord", "text", words,
                               **extra)

    lines = [
        photo(1, "Bob", "other", "/add mochi | a sky"),  # a caption, not a reply
        photo(2, "OneWord", "other", reply_to=1),
        text(3, "Alice", "/learn anna person"),
        text(4, "OneWord", "Reply to this message with them.", reply_to=3),
        photo(5, "Alice", "portrait", album="a", reply_to=4),
        photo(6, "Alice", "other", album="a", reply_to=4),
        photo(7, "Bob", "group"),
        text(8, "Bob", "/add anna | two faces", reply_to=7),
        text(9, "OneWord", "⚙️ 50%", deleted=True, reply_to=8),
        photo(10, "OneWord", "result", reply_to=8),
    ]
    story = transcript.Transcript("Story", lines)
    path = transcript.people_picture(story, tmp_path, "/add anna", side=64, gap=8)
    assert path == tmp_path / "people.png"
    with Image.open(path) as picture:
        assert picture.size == (3 * 64 + 2 * 8, 64)
        assert [picture.getpixel((x, 32)) for x in (32, 104, 176)] == [
            colours["portrait"], colours["group"], colours["result"]]
        assert picture.getpixel((68, 32)) == (255, 255, 255)  # the gap
    refused = transcript.Transcript("Story", [*lines[:9], text(10, "OneWord", "Sorry, no",
                                                                reply_to=8)])
    assert transcript.people_picture(refused, tmp_path / "x", "/add anna") is None
    assert transcript.people_picture(story, tmp_path, "/add bob") is None


# ---------------------------------------------------------------------- scripted story


@pytest.mark.slow
def test_scripted_story_on_the_tiny_model(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "oneword", "playground", "--script", "--model",
         str(tiny_model_dir), "--learn-steps", "4", "--inversion-steps", "2", "--out",
         str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Transcript:" in run.stdout and "learn mochi" in run.stdout
    story = json.loads((out / "transcript.json").read_text())
    bot = [m for m in story["messages"] if m["from_bot"]]
    assert any(m["kind"] == "photo" and m["images"] for m in bot)
    assert any(m["kind"] == "sticker" and m["images"] for m in bot)
    pack = next(m for m in bot if "pack is ready" in (m["text"] or ""))  # the story's pack
    assert len(pack["buttons"]) == 6 and "addemoji" in pack["text"]
    assert any(m["deleted"] for m in bot), "status messages are kept, marked"
    assert {m["chat"] for m in story["messages"]} == {"OneWord", "Sticker Club"}
    for message in story["messages"]:
        for image in message["images"]:
            assert (out / image).stat().st_size > 0
    assert "data:image/webp;base64," in (out / "transcript.html").read_text()
    with Image.open(out / "picture.png") as picture:  # the README's picture of the story
        assert picture.width >= 3 * 192 and picture.height > 192
    # the group learned a person from her portraits and added her to its group photo
    group = [m for m in story["messages"] if m["chat"] == "Sticker Club"]
    request = next(m for m in group if (m["text"] or "").startswith(f"/add {PERSON}"))
    assert any(m["from_bot"] and m["kind"] == "photo" and m["reply_to"] == request["message_id"]
               for m in group)
    assert sum(1 for m in group if m["album"] and not m["from_bot"]) == 5
    with Image.open(out / "people.png") as picture:  # the README's picture of the group
        assert picture.size == (3 * 192 + 2 * 16, 192)
    assert (out / "logs" / "worker.log").read_text().count("done") >= 7
