"""The playground's chat page in a real browser: headless Chromium driven by Playwright.

``oneword playground`` runs as a user starts it (real bot and worker, here on the tiny model
with a few learning steps); the test teaches a word with an album uploaded through the page's
file input, sends an edit command on a sample scene through the reply chips, and checks that
the bot's photos are shown (loaded images), that inline buttons sit under their message
bubble and the samples panel never covers the chat (on a desktop and at a phone's 390 px),
then stops the playground with Ctrl-C (SIGINT).

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` package
from PyPI; it never downloads a browser (no ``playwright install``).
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("ONEWORD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
CREATURE = sorted((REPO / "engine" / "samples" / "creature").glob("*.png"))[:3]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright; no `playwright install`)"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None,
                                                    reason=_missing() or "")]

BOXES = """() => {
    const box = (node) => { const r = node.getBoundingClientRect();
        return { top: r.top, bottom: r.bottom, left: r.left, right: r.right }; };
    const keyboard = [...document.querySelectorAll('.msg:not(.mine) .keyboard')].pop();
    const stack = keyboard.parentElement;
    return { keyboard: box(keyboard), bubble: box(stack.querySelector('.bubble')),
             inBubble: keyboard.closest('.bubble') !== null,
             samples: box(document.querySelector('#samples')),
             messages: box(document.querySelector('#messages')),
             composer: box(document.querySelector('#composer')),
             samplesShown: !document.querySelector('#samples').hidden,
             width: window.innerWidth, height: window.innerHeight };
}"""


def overlap(a: dict, b: dict) -> bool:
    """Whether two boxes share any area."""
    return min(a["right"], b["right"]) > max(a["left"], b["left"]) and \
        min(a["bottom"], b["bottom"]) > max(a["top"], b["top"])


def check_layout(page) -> dict:
    """Inline buttons under their bubble (as in Telegram), and the samples panel beside or
    under the chat, never over it."""
    boxes = page.evaluate(BOXES)
    assert not boxes["inBubble"], "the inline buttons are inside the message bubble"
    assert boxes["keyboard"]["top"] >= boxes["bubble"]["bottom"], boxes
    assert boxes["keyboard"]["right"] <= boxes["width"] + 0.5, boxes
    assert boxes["samplesShown"]
    for part in ("messages", "composer"):
        assert not overlap(boxes["samples"], boxes[part]), f"samples cover the {part}: {boxes}"
    assert boxes["messages"]["bottom"] - boxes["messages"]["top"] >= 0.3 * boxes["height"]
    return boxes


LOADED_BOT_PHOTOS = """() => [...document.querySelectorAll('.msg:not(.mine) .photos img')]
    .filter((img) => img.complete && img.naturalWidth > 0).length"""


class Running:
    """A started playground: its address, its process and what it printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def url(self, timeout: float) -> str:
        """Wait for the "Playground on http://..." line."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"the playground did not print its address within {timeout} s")
            found = re.search(r"Playground on (http://\S+)", line)
            if found:
                return found.group(1)

    def rest(self) -> str:
        """Everything printed after the address, once the process has ended."""
        self.reader.join(10)
        return "".join(self.lines.queue)


@pytest.fixture
def playground(tiny_model_dir, tmp_path) -> Iterator[tuple[str, Running]]:
    """``oneword playground --port 0`` on the tiny model; yields its URL and the process."""
    stderr = open(tmp_path / "playground.err", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "oneword", "playground", "--port", "0", "--model",
         str(tiny_model_dir), "--learn-steps", "4", "--inversion-steps", "2", "--data-dir",
         str(tmp_path / "data")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    running = Running(process)
    try:
        yield running.url(timeout=120), running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        stderr.close()


def test_album_command_and_photos_in_the_browser(playground) -> None:
    from playwright.sync_api import sync_playwright

    url, running = playground
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.wait_for_selector("#chat-list li")

            page.fill("#text", "/learn mochi")
            page.press("#text", "Enter")
            page.wait_for_selector(".msg:not(.mine) .text", timeout=30_000)
            page.set_input_files("#file-input", [str(path) for path in CREATURE])
            page.wait_for_function(
                "() => document.querySelectorAll('.msg.mine .photos.album img').length === 3")
            page.wait_for_function(f"() => ({LOADED_BOT_PHOTOS})() >= 1", timeout=180_000)

            page.click(".sample-scene >> nth=0")
            page.click("#reply-chips button:has-text('replace circle')")
            assert page.input_value("#text").startswith("replace circle with mochi | a big red")
            page.press("#text", "Enter")
            page.wait_for_function(f"() => ({LOADED_BOT_PHOTOS})() >= 2", timeout=180_000)
            page.wait_for_selector(".msg:not(.mine) .keyboard button:has-text('Why?')")
            sources = page.eval_on_selector_all(".msg:not(.mine) .photos img",
                                                "imgs => imgs.map(i => i.src)")
            assert all("/control/files/" in src for src in sources)
            wide = check_layout(page)
            assert wide["samples"]["left"] >= wide["messages"]["right"]  # beside the chat
            page.wait_for_function(  # the person's portraits are a sample set like the others
                "() => [...document.querySelectorAll(\".sample-set[data-set='person'] img\")]"
                ".filter((i) => i.complete && i.naturalWidth > 0).length === 5")
            assert "Person · 5 photos" in page.inner_text(".sample-set[data-set='person']")

            page.set_viewport_size({"width": 390, "height": 844})  # a phone
            page.wait_for_function("() => window.innerWidth === 390")
            phone = check_layout(page)
            assert phone["samples"]["top"] >= phone["composer"]["bottom"]  # under the chat
            assert phone["samples"]["right"] <= 390.5
        finally:
            browser.close()
    assert errors == []

    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(60) == 0
    assert "stopped." in running.rest()
