"""``parse_mode`` support: HTML, MarkdownV2 and legacy Markdown to plain text + entities.

Telegram strips the markup, stores entities, and rejects malformed markup with
``400 Bad Request: can't parse entities: ...``. Reproducing that catches a whole class of bot
bugs (an unescaped ``.`` in MarkdownV2, an unknown HTML tag) before they reach production.
The parsers cover the documented syntax; error texts follow Telegram's wording.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .entities import utf16_len
from .errors import ApiError, bad_request

_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link",
    "code": "code", "pre": "pre", "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}
_HTML_NAME = re.compile(r"\s*([a-zA-Z][\w-]*)")
_HTML_ATTR = re.compile(r"\s*([a-zA-Z][\w-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")
_HTML_ESCAPE = re.compile(r"&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]{2,8});")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

_MD_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline",
    "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code", "pre": "Pre",
    "text_link": "TextUrl", "blockquote": "BlockQuote",
}
_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_V2_MARKERS = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough",
               "||": "spoiler"}
_LEGACY_MARKERS = {"*": "bold", "_": "italic"}
_LEGACY_LINK = re.compile(r"\[[^\]\n]*\]\(")


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``parse_mode`` to ``text``; returns the plain text and its entities."""
    mode = (parse_mode or "").strip().lower()
    if not mode:
        return text, []
    if mode == "html":
        return _HtmlParser(text).run()
    if mode in ("markdownv2", "markdown"):
        return _MarkdownParser(text, v2=mode == "markdownv2").run()
    raise bad_request(f"unsupported parse_mode \"{parse_mode}\"")


def _parse_error(reason: str) -> ApiError:
    return bad_request(f"can't parse entities: {reason}")


class _Output:
    """Collects plain text and entities while a parser walks the markup."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.offset += utf16_len(chunk)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.offset > start:
            self.entities.append(
                {"type": kind, "offset": start, "length": self.offset - start, **extra}
            )

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


class _HtmlParser:
    """Telegram's HTML subset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = _Output()
        self.stack: list[tuple[str, int, dict[str, str]]] = []

    def _byte(self, index: int) -> int:
        return len(self.text[:index].encode())

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        text, i = self.text, 0
        while i < len(text):
            if text[i] == "<":
                i = self._tag(i)
            elif text[i] == "&":
                match = _HTML_ESCAPE.match(text, i)
                char = _decode_html_escape(match.group(1)) if match else None
                self.out.add(char if char is not None else "&")
                i = match.end() if match and char is not None else i + 1
            else:
                stop = min((j for j in (text.find("<", i), text.find("&", i)) if j >= 0),
                           default=len(text))
                self.out.add(text[i:stop])
                i = stop
        if self.stack:
            raise _parse_error(
                f"Can't find end tag corresponding to start tag \"{self.stack[-1][0]}\""
            )
        return self.out.result()

    def _tag(self, i: int) -> int:
        end = self.text.find(">", i)
        if end < 0:
            raise _parse_error(f"Unclosed start tag at byte offset {self._byte(i)}")
        inner = self.text[i + 1:end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not self.stack:
                raise _parse_error(f"Unexpected end tag at byte offset {self._byte(i)}")
            tag, start, attrs = self.stack.pop()
            if name != tag:
                raise _parse_error(
                    f"Unmatched end tag at byte offset {self._byte(i)}, "
                    f"expected \"</{tag}>\", found \"</{name}>\""
                )
            self._close(tag, start, attrs)
            return end + 1
        match = _HTML_NAME.match(inner)
        name = match.group(1).lower() if match else ""
        attrs = {
            m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
            for m in _HTML_ATTR.finditer(inner, match.end() if match else 0)
        }
        if inner.endswith("/"):
            attrs.pop("/", None)
        if name not in _HTML_TAGS or (name == "span" and attrs.get("class") != "tg-spoiler"):
            raise _parse_error(f"Unsupported start tag \"{name}\" at byte offset {self._byte(i)}")
        self.stack.append((name, self.out.offset, attrs))
        return end + 1

    def _close(self, tag: str, start: int, attrs: dict[str, str]) -> None:
        kind = _HTML_TAGS[tag]
        if tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = attrs.get("class", "")
            if language.startswith("language-"):
                self.stack[-1][2]["language"] = language[len("language-"):]
                return
        extra: dict[str, Any] = {}
        if kind == "text_link":
            if not attrs.get("href"):
                return
            extra["url"] = attrs["href"]
        elif kind == "pre" and attrs.get("language"):
            extra["language"] = attrs["language"]
        elif kind == "blockquote" and "expandable" in attrs:
            kind = "expandable_blockquote"
        elif kind == "custom_emoji":
            extra["custom_emoji_id"] = attrs.get("emoji-id", "")
        self.out.entity(kind, start, **extra)


def _decode_html_escape(name: str) -> str | None:
    """Character for an HTML escape Telegram supports, or ``None`` to keep it literal."""
    if name.startswith(("#x", "#X")):
        code = int(name[2:], 16)
    elif name.startswith("#"):
        code = int(name[1:])
    else:
        return _HTML_NAMED.get(name)
    return chr(code) if 0 < code <= 0x10FFFF else None


class _MarkdownParser:
    """MarkdownV2 (strict escaping, nesting) and legacy Markdown (no nesting)."""

    def __init__(self, text: str, v2: bool) -> None:
        self.text = text
        self.v2 = v2
        self.out = _Output()
        self.stack: list[tuple[str, int, int]] = []
        self.quote_start: int | None = None

    def _byte(self, index: int) -> int:
        return len(self.text[:index].encode())

    def _unclosed(self, kind: str, index: int) -> ApiError:
        if self.v2:
            return _parse_error(
                f"Can't find end of {_MD_NAMES[kind]} entity at byte offset {self._byte(index)}"
            )
        return _parse_error(
            f"Can't find end of the entity starting at byte offset {self._byte(index)}"
        )

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        text, i = self.text, 0
        while i < len(text):
            i = self._step(i)
        if self.stack:
            kind, _, index = self.stack[-1]
            raise self._unclosed(kind, index)
        self._end_quote()
        return self.out.result()

    def _step(self, i: int) -> int:
        text, ch = self.text, self.text[i]
        if ch == "\\" and i + 1 < len(text) and self._escapable(text[i + 1]):
            self.out.add(text[i + 1])
            return i + 2
        if ch == "`":
            return self._pre(i) if text.startswith("```", i) else self._code(i)
        if self.v2 and ch == ">" and (i == 0 or text[i - 1] == "\n"):
            if self.quote_start is None:
                self.quote_start = self.out.offset
            return i + 1
        if ch == "\n":
            if self.quote_start is not None and not text.startswith(">", i + 1):
                self._end_quote()
            self.out.add(ch)
            return i + 1
        marker = self._marker(i)
        if marker:
            self._toggle(_V2_MARKERS.get(marker) or _LEGACY_MARKERS[marker], i)
            return i + len(marker)
        if ch == "[" and self._link_start(i):
            self.stack.append(("text_link", self.out.offset, i))
            return i + 1
        if ch == "]" and self.stack and self.stack[-1][0] == "text_link":
            return self._link_target(i)
        if self.v2 and ch in _V2_RESERVED:
            raise _parse_error(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.add(ch)
        return i + 1

    def _escapable(self, char: str) -> bool:
        return 0 < ord(char) < 127 if self.v2 else char in "_*`["

    def _link_start(self, i: int) -> bool:
        if self.v2:
            return True
        return not self.stack and _LEGACY_LINK.match(self.text, i) is not None

    def _marker(self, i: int) -> str | None:
        text = self.text
        if self.v2:
            for marker in ("__", "||", "*", "_", "~"):
                if text.startswith(marker, i):
                    return marker
            return None
        if text[i] in _LEGACY_MARKERS:
            open_kind = self.stack[-1][0] if self.stack else None
            if open_kind is None or open_kind == _LEGACY_MARKERS[text[i]]:
                return text[i]
        return None

    def _toggle(self, kind: str, i: int) -> None:
        if self.stack and self.stack[-1][0] == kind:
            _, start, _ = self.stack.pop()
            self.out.entity(kind, start)
            return
        if any(open_kind == kind for open_kind, _, _ in self.stack):
            open_kind, _, index = self.stack[-1]
            raise self._unclosed(open_kind, index)
        self.stack.append((kind, self.out.offset, i))

    def _literal_until(self, i: int, closing: str) -> tuple[str, int]:
        """Read raw text from ``i`` up to ``closing`` (escapes honoured in MarkdownV2)."""
        text, chunk = self.text, []
        escapes = "`\\" if closing.startswith("`") else ")\\"
        while i < len(text):
            if self.v2 and text[i] == "\\" and i + 1 < len(text) and text[i + 1] in escapes:
                chunk.append(text[i + 1])
                i += 2
            elif text.startswith(closing, i):
                return "".join(chunk), i + len(closing)
            else:
                chunk.append(text[i])
                i += 1
        raise ValueError("unterminated")

    def _code(self, i: int) -> int:
        try:
            body, after = self._literal_until(i + 1, "`")
        except ValueError:
            raise self._unclosed("code", i) from None
        start = self.out.offset
        self.out.add(body)
        self.out.entity("code", start)
        return after

    def _pre(self, i: int) -> int:
        try:
            body, after = self._literal_until(i + 3, "```")
        except ValueError:
            raise self._unclosed("pre", i) from None
        language = ""
        first, newline, rest = body.partition("\n")
        if newline and first and " " not in first:
            language, body = first, rest
        start = self.out.offset
        self.out.add(body)
        self.out.entity("pre", start, **({"language": language} if language else {}))
        return after

    def _link_target(self, i: int) -> int:
        _, start, index = self.stack.pop()
        if not self.text.startswith("(", i + 1):
            raise _parse_error(
                "Character ']' is reserved and must be escaped with the preceding '\\'"
            )
        try:
            url, after = self._literal_until(i + 2, ")")
        except ValueError:
            raise self._unclosed("text_link", index) from None
        self.out.entity("text_link", start, url=url)
        return after

    def _end_quote(self) -> None:
        if self.quote_start is not None:
            self.out.entity("blockquote", self.quote_start)
            self.quote_start = None
