"""Writing a played conversation down: ``transcript.json`` and a self-contained
``transcript.html``.

Every message of the given chats is read back from the control API, both sides, with its edit
history (a job's status message is edited while the job runs and deleted when the result
arrives: the transcript keeps it, marked, because the progress is part of the story). Images
are downloaded into ``files/`` next to the transcript; the HTML embeds them as data URIs, so it
can be mailed or opened anywhere as a single file.
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botapi import ControlClient, MessageRecord

BOT_NAME = "OneWord"
_MEDIA_TYPES = {b"\xff\xd8": ("jpg", "image/jpeg"), b"\x89P": ("png", "image/png"),
                b"RI": ("webp", "image/webp"), b"GI": ("gif", "image/gif")}


@dataclass
class Line:
    """One message of the transcript."""

    chat: str  # the chat's title
    chat_id: int
    message_id: int
    who: str  # the sender's first name, or the bot's
    from_bot: bool
    kind: str  # text | photo | sticker | document
    text: str | None  # text or caption, as the message reads at the end
    images: list[str] = field(default_factory=list)  # files next to transcript.json
    versions: list[str | None] = field(default_factory=list)  # earlier texts, if edited
    deleted: bool = False  # a progress message the bot removed when the result came
    reply_to: int | None = None
    buttons: list[str] = field(default_factory=list)
    album: str | None = None  # media_group_id
    date: int = 0


@dataclass
class Transcript:
    """The whole conversation, chat after chat."""

    title: str
    lines: list[Line]
    notes: dict[str, Any] = field(default_factory=dict)  # model, settings, timings

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "notes": self.notes,
                "messages": [asdict(line) for line in self.lines]}


async def collect(client: ControlClient, chats: list[tuple[int, str]], out_dir: Path,
                  title: str, notes: dict[str, Any] | None = None) -> Transcript:
    """Read the chats back and download every picture into ``out_dir/files``."""
    files_dir = out_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    lines: list[Line] = []
    for chat_id, chat_title in chats:
        for record in await client.messages(chat_id):
            lines.append(await _line(client, record, chat_title, files_dir))
    return Transcript(title, lines, dict(notes or {}))


async def _line(client: ControlClient, record: MessageRecord, chat_title: str,
                files_dir: Path) -> Line:
    message = record.message
    sender = message.get("from") or {}
    kind = next((k for k in ("photo", "sticker", "document") if message.get(k)), "text")
    images: list[str] = []
    file_id = record.file_id()
    if file_id and kind in ("photo", "sticker"):
        data = await client.download(file_id)
        suffix = _media_type(data)[0]
        chat = f"g{-record.chat_id}" if record.chat_id < 0 else f"c{record.chat_id}"
        name = f"{chat}-{record.message_id}.{suffix}"
        (files_dir / name).write_bytes(data)
        images.append(f"files/{name}")
    return Line(
        chat=chat_title, chat_id=record.chat_id, message_id=record.message_id,
        who=BOT_NAME if record.from_bot else sender.get("first_name", "?"),
        from_bot=record.from_bot, kind=kind, text=record.text, images=images,
        versions=list(record.texts[:-1]), deleted=record.deleted,
        reply_to=record.reply_to_message_id, buttons=[b["text"] for b in record.buttons],
        album=record.media_group_id, date=int(message.get("date", 0)))


def _media_type(data: bytes) -> tuple[str, str]:
    return _MEDIA_TYPES.get(data[:2], ("bin", "application/octet-stream"))


def write(transcript: Transcript, out_dir: Path) -> tuple[Path, Path]:
    """Write ``transcript.json`` and ``transcript.html`` into ``out_dir``; returns both."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "transcript.json", out_dir / "transcript.html"
    json_path.write_text(json.dumps(transcript.to_json(), indent=2, ensure_ascii=False))
    html_path.write_text(render_html(transcript, out_dir), encoding="utf-8")
    return json_path, html_path


def picture(transcript: Transcript, out_dir: Path, side: int = 192, gap: int = 16,
            max_width: int = 1280) -> Path | None:
    """``picture.png``: the story at a glance, for a README. Top row: the first photo a concept
    was learned from, the photo of the first "replace" edit and the bot's result; below, the
    "Why?" attention maps of that edit. None when the transcript has no such edit."""
    from PIL import Image

    learned = next((line for line in transcript.lines if line.album and line.images), None)
    request = next((line for line in transcript.lines if line.images and not line.from_bot
                    and (line.text or "").startswith("replace")), None)
    if learned is None or request is None:
        return None
    replies = {line.reply_to: line for line in transcript.lines
               if line.from_bot and line.images and line.chat_id == request.chat_id}
    result = replies.get(request.message_id)
    maps = replies.get(result.message_id) if result is not None else None
    if result is None or maps is None:
        return None
    top = [Image.open(out_dir / line.images[0]).convert("RGB").resize((side, side))
           for line in (learned, request, result)]
    why = Image.open(out_dir / maps.images[0]).convert("RGB")
    if why.width > max_width:
        why = why.resize((max_width, round(why.height * max_width / why.width)), Image.LANCZOS)
    width = max(why.width, 3 * side + 2 * gap)
    canvas = Image.new("RGB", (width, side + gap // 2 + why.height), "white")
    for i, image in enumerate(top):
        canvas.paste(image, (i * (side + gap), 0))
    canvas.paste(why, (0, side + gap // 2))
    path = out_dir / "picture.png"
    canvas.save(path, optimize=True)
    return path


def people_picture(transcript: Transcript, out_dir: Path, command: str, side: int = 192,
                   gap: int = 16) -> Path | None:
    """``people.png``: a person added to a group photo, for a README. One row: the first
    portrait of the album she was learned from, the group photo that ``command`` (say
    "/add anna") replied to, and the bot's result. None when the transcript has no such edit
    or the bot answered it without a photo."""
    from PIL import Image

    by_id = {(line.chat_id, line.message_id): line for line in transcript.lines}
    request = next((line for line in transcript.lines if not line.from_bot
                    and (line.text or "").startswith(command) and line.reply_to), None)
    if request is None:
        return None
    photo = by_id.get((request.chat_id, request.reply_to or 0))
    portraits = next((line for line in transcript.lines if line.album and line.images
                      and line.chat_id == request.chat_id), None)
    result = next((line for line in transcript.lines if line.from_bot and line.images
                   and line.chat_id == request.chat_id
                   and line.reply_to == request.message_id), None)
    if photo is None or not photo.images or portraits is None or result is None:
        return None
    canvas = Image.new("RGB", (3 * side + 2 * gap, side), "white")
    for i, line in enumerate((portraits, photo, result)):
        with Image.open(out_dir / line.images[0]) as image:
            canvas.paste(image.convert("RGB").resize((side, side)), (i * (side + gap), 0))
    path = out_dir / "people.png"
    canvas.save(path, optimize=True)
    return path


# ------------------------------------------------------------------------------------ HTML

_CSS = """
body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 background:#c8d9e6;color:#111}
main{max-width:720px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:8px 0 4px}.notes{color:#456;font-size:13px;margin-bottom:12px}
h2{position:sticky;top:0;background:#517da2;color:#fff;font-size:16px;margin:24px -16px 8px;
 padding:10px 16px}
.msg{display:flex;margin:4px 0}.msg.me{justify-content:flex-end}
.bubble{max-width:78%;background:#fff;border-radius:12px;padding:6px 10px;
 box-shadow:0 1px 1px rgba(0,0,0,.15)}
.me .bubble{background:#effdde}
.who{font-weight:600;color:#3a76a8;font-size:13px}.bot .who{color:#c0392b}
.text{white-space:pre-wrap;word-wrap:break-word}
.meta{color:#8a9aa8;font-size:11px;text-align:right}
.quote{border-left:3px solid #3a76a8;padding:0 6px;margin:2px 0 4px;color:#456;font-size:13px;
 max-height:2.8em;overflow:hidden}
.photos{display:flex;flex-wrap:wrap;gap:3px;margin:2px 0}
.photos img{width:auto;min-width:220px;max-width:min(100%,480px);border-radius:8px}
.photos.album img{width:120px;min-width:0}
.sticker{width:180px;background:none;box-shadow:none}
.buttons{display:flex;gap:4px;margin-top:4px}
.buttons span{flex:1;text-align:center;background:rgba(81,125,162,.15);color:#2b5278;
 border-radius:8px;padding:4px 6px;font-size:13px}
.progress .bubble{background:#f4f6f8;color:#567;font-size:13px;border:1px dashed #a9b8c6}
.progress .trail{color:#8a9aa8;font-size:12px;white-space:pre-wrap}
"""


def render_html(transcript: Transcript, out_dir: Path) -> str:
    """A Telegram-like page of the conversation, pictures embedded as data URIs."""
    uris: dict[str, str] = {}

    def uri(relative: str) -> str:
        if relative not in uris:
            data = (out_dir / relative).read_bytes()
            encoded = base64.b64encode(data).decode()
            uris[relative] = f"data:{_media_type(data)[1]};base64,{encoded}"
        return uris[relative]

    me = transcript.lines[0].who if transcript.lines else ""
    notes = " · ".join(f"{k}: {v}" for k, v in transcript.notes.items())
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>{html.escape(transcript.title)}</title><style>{_CSS}</style></head>"
             f"<body><main><h1>{html.escape(transcript.title)}</h1>"
             f"<div class=notes>{html.escape(notes)}</div>"]
    by_id = {(line.chat_id, line.message_id): line for line in transcript.lines}
    chat = None
    for group in _albums(transcript.lines):
        first = group[0]
        if first.chat != chat:
            chat = first.chat
            parts.append(f"<h2>{html.escape(chat)}</h2>")
        parts.append(_message_html(group, by_id.get((first.chat_id, first.reply_to or 0)),
                                   me, uri))
    parts.append("</main></body></html>")
    return "".join(parts)


def _albums(lines: list[Line]) -> list[list[Line]]:
    """Consecutive photos of one album become one group, as Telegram shows them."""
    groups: list[list[Line]] = []
    for line in lines:
        previous = groups[-1][-1] if groups else None
        if (previous is not None and line.album and previous.album == line.album
                and previous.chat_id == line.chat_id):
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def _message_html(group: list[Line], replied: Line | None, me: str, uri: Any) -> str:
    first = group[0]
    side = "me" if first.who == me and not first.from_bot else ""
    classes = ["msg", side, "bot" if first.from_bot else ""]
    when = time.strftime("%H:%M", time.localtime(first.date)) if first.date else ""
    body: list[str] = [f"<div class=who>{html.escape(first.who)}</div>"]
    if replied is not None:
        body.append(f"<div class=quote><b>{html.escape(replied.who)}</b> "
                    f"{html.escape(_snippet(replied))}</div>")
    images = [image for line in group for image in line.images]
    if images:
        album = " album" if len(images) > 1 else ""
        body.append(f"<div class='photos{album}'>" + "".join(
            f"<img src='{uri(i)}' alt='{html.escape(first.kind)}'>" for i in images) + "</div>")
    text = next((line.text for line in group if line.text), None)
    if text:
        body.append(f"<div class=text>{html.escape(text)}</div>")
    if first.deleted:
        classes.append("progress")
        trail = [v for v in first.versions if v]
        shown = (f"{len(trail)} updates before: {trail[0]} … {trail[-1]}" if len(trail) > 1
                 else "")
        body.append(f"<div class=trail>progress message, removed when the answer came"
                    f"{html.escape(' · ' + shown if shown else '')}</div>")
    if first.buttons:
        body.append("<div class=buttons>" + "".join(
            f"<span>{html.escape(b)}</span>" for b in first.buttons) + "</div>")
    edited = " · edited" if first.versions and not first.deleted else ""
    body.append(f"<div class=meta>{when}{edited}</div>")
    bubble = "bubble sticker" if first.kind == "sticker" else "bubble"
    return (f"<div class='{' '.join(c for c in classes if c)}'><div class='{bubble}'>"
            + "".join(body) + "</div></div>")


def _snippet(line: Line) -> str:
    if line.text:
        return line.text if len(line.text) <= 60 else line.text[:57] + "…"
    return {"photo": "Photo", "sticker": "Sticker"}.get(line.kind, line.kind)
