"""The scripted story: the whole of OneWord played by three simulated people, no browser.

In the private chat Alice teaches the bot a creature from its five photos, puts it into a scene
("replace circle with mochi"), asks why, teaches an unnamed style and restyles a scene with it,
makes a sticker and adds it to her set, and makes a sticker pack of the creature (six
expressions, a sticker set and a custom emoji set). In the group she shares the creature; Bob
adds it to his photo and Carol removes a star from hers. Then the group meets a person: Alice
teaches the bot Anna from her five portraits (the album a reply to the bot's request, as a
group needs), and Bob adds Anna to a group photo of two faces.

Everything goes through the control API as a person would (:class:`botapi.ControlClient`,
:class:`botapi.Persona`); each step waits for the bot's answer, not for a fixed time. A step
whose answer is not what was hoped for (a refusal, a failed job) is noted and the story goes
on: it shows what a user would see. While it runs, :class:`Narrator` prints the bot's messages
(progress included) to the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from botapi import ControlClient, MessageRecord, Persona
from playground.samples import Samples
from playground.web import create_people

CREATURE = "mochi"  # what Alice calls the creature
STYLE = "inkwash"  # and the unnamed style
PERSON = "anna"  # the person the group learns from her portraits
GROUP_PHOTO = 6  # the scene (0-based) of two faces that Anna is added to
PROGRESS_MARKS = ("⏳", "⚙", "🚫", "✅")  # how the bot's job status lines begin
LEARN_TIMEOUT = 1200.0
EDIT_TIMEOUT = 900.0
REPLY_TIMEOUT = 60.0

Echo = Callable[[str], None]


def is_progress(record: MessageRecord) -> bool:
    """A job's status message (edited while the job runs, deleted when its answer comes)."""
    return not (record.photo or record.sticker) and (record.text or "").startswith(
        PROGRESS_MARKS)


def describe(record: MessageRecord) -> str:
    """One line for the terminal: the media, the text, the buttons."""
    media = "[photo]" if record.photo else "[sticker]" if record.sticker else ""
    text = " ".join((record.text or "").split())
    buttons = " ".join(f"[{b['text']}]" for b in record.buttons)
    return " ".join(part for part in (media, text, buttons) if part)


class Narrator:
    """Prints the bot's messages as they appear and change.

    On a terminal a status message is redrawn in place as its progress changes; elsewhere
    (a log, CI) each status line is printed when it first appears and then at most every
    ``every`` seconds, so the output stays readable.
    """

    def __init__(self, client: ControlClient, chats: dict[int, str], echo: Echo,
                 live: bool | None = None, every: float = 10.0) -> None:
        self.client = client
        self.chats = chats
        self.echo = echo
        self.live = sys.stdout.isatty() if live is None else live
        self.every = every
        self._shown: dict[tuple[int, int], tuple[str, float]] = {}
        self._open_line = False

    def say(self, line: str) -> None:
        """Print a line of the story, below any progress line being redrawn."""
        self._close_line()
        self.echo(line)

    def _close_line(self) -> None:
        if self._open_line:
            sys.stdout.write("\n")
            self._open_line = False

    async def watch(self, check: Callable[[], None]) -> None:
        """Follow the chats until cancelled; ``check`` raises if the services died."""
        version = 0
        while True:
            check()
            version = await self.client.wait_changes(version, 2.0)
            await self.update()

    async def update(self) -> None:
        """Print whatever is new or changed since the last look."""
        for chat_id in self.chats:
            for record in await self.client.bot_messages(chat_id):
                self._show(record)

    def _show(self, record: MessageRecord) -> None:
        key = (record.chat_id, record.message_id)
        text = describe(record)
        last = self._shown.get(key)
        if record.deleted or (last is not None and last[0] == text):
            return
        where = self.chats[record.chat_id]
        line = f"  {where}OneWord: {text}"
        now = time.monotonic()
        if not is_progress(record):
            self.say(line)
        elif self.live:
            width = shutil.get_terminal_size().columns - 1  # one row, or \r cannot redraw it
            sys.stdout.write("\r\033[K" + line[:width])
            sys.stdout.flush()
            self._open_line = True
        elif last is None or now - last[1] >= self.every:
            self.say(line)
        else:
            return
        self._shown[key] = (text, now)


@dataclass
class StoryResult:
    """How the story went: the steps that did not get the hoped-for answer, and timings."""

    failures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    chats: list[tuple[int, str]] = field(default_factory=list)  # (chat id, title) in order


class Story:
    """Plays the story against a running playground stack (see :mod:`playground.harness`)."""

    def __init__(self, client: ControlClient, samples: Samples, echo: Echo = print,
                 live: bool | None = None) -> None:
        self.client = client
        self.samples = samples
        self.echo = echo
        self.live = live
        self.result = StoryResult()
        self.narrator: Narrator | None = None

    async def play(self, check: Callable[[], None] = lambda: None) -> StoryResult:
        """Cast the people, then play every step while the narrator follows the chats.
        Raises what ``check`` raises (a service died) as soon as it does."""
        setup = await create_people(self.client)
        private, group = setup["chats"]
        self.result.chats = [(private["id"], private["title"]), (group["id"], group["title"])]
        self.narrator = Narrator(self.client, {private["id"]: "", group["id"]: "[group] "},
                                 self.echo, self.live)
        alice, bob, carol = (Persona(self.client, user, private["id"])
                             for user in setup["users"])
        bob, carol = bob.in_chat(group["id"]), carol.in_chat(group["id"])
        watcher = asyncio.create_task(self.narrator.watch(check))
        story = asyncio.create_task(self._steps(alice, alice.in_chat(group["id"]), bob, carol))
        done, _ = await asyncio.wait({watcher, story}, return_when=asyncio.FIRST_COMPLETED)
        for task in (watcher, story):
            if task not in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if watcher in done:
            watcher.result()  # raises the services' failure
        story.result()
        await self.narrator.update()
        self.narrator.say("")
        return self.result

    # ------------------------------------------------------------------------- the story

    async def _steps(self, alice: Persona, alice_in_group: Persona, bob: Persona,
                     carol: Persona) -> None:
        sets, scenes = self.samples.sets, self.samples.scenes
        self._act("Alice", "/start")
        await self._answer("start", alice, await alice.say("/start"), REPLY_TIMEOUT)

        learned = await self._learn(alice, CREATURE, "", sets["creature"])
        scene1 = await self._edit(alice, scenes[0], f"replace circle with {CREATURE}")
        result = scene1[1]
        if result is not None and result.buttons:
            self._act("Alice", "presses [Why?] under the result")
            await alice.press(result, text="Why?")
            await self._answer("why", alice, result, EDIT_TIMEOUT, media="photo")

        await self._learn(alice, STYLE, " style", sets["style"])
        await self._edit(alice, scenes[2], f"restyle as {STYLE}")

        sticker_request = f"/sticker {scenes[0].caption}"
        self._act("Alice", f"replies to the first scene: {sticker_request}")
        request = await alice.say(sticker_request, reply_to=scene1[0])
        sticker = await self._answer("sticker", alice, request, EDIT_TIMEOUT, media="sticker")
        if sticker is not None and sticker.buttons:
            self._act("Alice", "presses [Add to my set]")
            await alice.press(sticker, text="Add to my set")
            await self._answer("sticker set", alice, sticker, REPLY_TIMEOUT)

        if learned is not None:
            self._act("Alice", f"/pack {CREATURE}")
            await self._answer("pack", alice, await alice.say(f"/pack {CREATURE}"),
                               EDIT_TIMEOUT, media="sticker")

        if learned is not None:
            self._act("Alice", f"in the group: /share {CREATURE}", group=True)
            await self._answer("share", alice_in_group,
                               await alice_in_group.say(f"/share {CREATURE}"), REPLY_TIMEOUT)
        await self._edit(bob, scenes[1], f"/add {CREATURE}", who="Bob")
        await self._edit(carol, scenes[3], "/remove star", who="Carol", as_reply=True)

        person = await self._learn(alice_in_group, PERSON, " person", sets["person"])
        if person is not None:
            await self._edit(bob, scenes[GROUP_PHOTO], f"/add {PERSON}", who="Bob",
                             as_reply=True)

    async def _learn(self, persona: Persona, name: str, kind: str,
                     photos: list[Path]) -> MessageRecord | None:
        """``/learn <name> [kind]``, then the photos as one album (in a group, as a reply to
        the bot's request for them: a bot in privacy mode sees only replies); returns the
        preview."""
        group = persona.chat_id < 0
        self._act("Alice", f"/learn {name}{kind}", group=group)
        request = await persona.say(f"/learn {name}{kind}")
        asked = await self._answer(f"/learn {name}", persona, request, REPLY_TIMEOUT)
        self._act("Alice", f"sends {len(photos)} photos as an album"
                  + (" in reply" if group else ""), group=group)
        album = await persona.send_album([p.read_bytes() for p in photos],
                                         reply_to=asked if group else None)
        return await self._answer(f"learn {name}", persona, request, LEARN_TIMEOUT,
                                  media="photo", after=album[-1])

    async def _edit(self, persona: Persona, scene, command: str, who: str = "Alice",
                    as_reply: bool = False) -> tuple[MessageRecord, MessageRecord | None]:
        """Send a scene with the command as its caption, or (``as_reply``) first the photo
        and then the command as a reply to it. The description after ``|`` tells the bot
        what the photo shows. Returns the photo message and the result."""
        group = persona.chat_id < 0
        text = f"{command} | {scene.caption}"
        data = scene.path.read_bytes()
        if as_reply:
            self._act(who, f"sends {scene.path.name}", group=group)
            photo = await persona.send_photo(data)
            self._act(who, f"replies to it: {text}", group=group)
            request = await persona.say(text, reply_to=photo)
        else:
            self._act(who, f"sends {scene.path.name} with the caption: {text}", group=group)
            photo = request = await persona.send_photo(data, caption=text)
        result = await self._answer(command, persona, request, EDIT_TIMEOUT, media="photo")
        return photo, result

    # ------------------------------------------------------------------------- helpers

    def _act(self, who: str, what: str, group: bool = False) -> None:
        assert self.narrator is not None
        self.narrator.say(f"{'[group] ' if group else ''}{who}: {what}")

    async def _answer(self, step: str, persona: Persona, request: MessageRecord,
                      timeout: float, media: str | None = None,
                      after: MessageRecord | None = None) -> MessageRecord | None:
        """The bot's answer to ``request`` (its first reply that is not a status line).

        ``media`` ("photo" or "sticker") is what a successful answer carries; anything else
        is recorded as a failure of the step. Returns the answer when it succeeded.
        """
        started = time.monotonic()
        answer = await persona.client.wait_for(
            persona.chat_id,
            lambda r: not is_progress(r) and r.reply_to_message_id == request.message_id,
            after=(after or request).message_id, timeout=timeout)
        self.result.timings[step] = round(time.monotonic() - started, 1)
        if self.narrator is not None:  # show the answer before the next step is announced
            await self.narrator.update()
        if media is not None and not getattr(answer, media):
            self.result.failures.append(f"{step}: {answer.text}")
            return None
        return answer

