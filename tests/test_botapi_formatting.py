"""Unit tests of the botapi text layer: parse modes and automatic entities."""

from __future__ import annotations

import pytest

from botapi.entities import auto_entities, leading_command, utf16_len
from botapi.errors import ApiError
from botapi.formatting import parse_text


def error_of(text: str, mode: str) -> str:
    with pytest.raises(ApiError) as err:
        parse_text(text, mode)
    assert err.value.code == 400
    return err.value.description


def test_html_tags_links_pre_and_escapes() -> None:
    text, entities = parse_text(
        '<b>bold</b> &lt;3 <a href="https://x.org">link</a> '
        '<pre><code class="language-python">x = 1</code></pre> <tg-spoiler>s</tg-spoiler>',
        "HTML",
    )
    assert text == "bold <3 link x = 1 s"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 4},
        {"type": "text_link", "offset": 8, "length": 4, "url": "https://x.org"},
        {"type": "pre", "offset": 13, "length": 5, "language": "python"},
        {"type": "spoiler", "offset": 19, "length": 1},
    ]


def test_html_errors_match_telegram() -> None:
    prefix = "Bad Request: can't parse entities: "
    assert error_of("a <x>b</x>", "HTML") == prefix + 'Unsupported start tag "x" at byte offset 2'
    assert error_of("<b>open", "HTML") == (
        prefix + 'Can\'t find end tag corresponding to start tag "b"'
    )
    assert error_of("<b>x</i>", "HTML") == (
        prefix + 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'
    )


def test_markdown_v2_entities_escapes_and_utf16_offsets() -> None:
    text, entities = parse_text(
        "😀 *bold* _it_ __under__ ~del~ ||spoil|| `co\\`de` [a](https://x.org/\\)) 1\\.5",
        "MarkdownV2",
    )
    assert text == "😀 bold it under del spoil co`de a 1.5"
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bold", 3, 4), ("italic", 8, 2), ("underline", 11, 5), ("strikethrough", 17, 3),
        ("spoiler", 21, 5), ("code", 27, 5), ("text_link", 33, 1),
    ]
    assert entities[-1]["url"] == "https://x.org/)"


def test_markdown_v2_errors_match_telegram() -> None:
    prefix = "Bad Request: can't parse entities: "
    assert error_of("Done!", "MarkdownV2") == (
        prefix + "Character '!' is reserved and must be escaped with the preceding '\\'"
    )
    assert error_of("é *bold", "MarkdownV2") == (
        prefix + "Can't find end of Bold entity at byte offset 3"
    )


def test_legacy_markdown_and_unknown_mode() -> None:
    assert parse_text("*b* _i_ [l](http://u) 1.5!", "Markdown") == (
        "b i l 1.5!",
        [
            {"type": "bold", "offset": 0, "length": 1},
            {"type": "italic", "offset": 2, "length": 1},
            {"type": "text_link", "offset": 4, "length": 1, "url": "http://u"},
        ],
    )
    assert error_of("snake_case", "Markdown") == (
        "Bad Request: can't parse entities: "
        "Can't find end of the entity starting at byte offset 5"
    )
    assert error_of("x", "Textile") == 'Bad Request: unsupported parse_mode "Textile"'
    assert parse_text("*raw*", None) == ("*raw*", [])


def test_auto_entities_for_user_text() -> None:
    text = "/add@oneword_bot mochi cc @alice #cats https://x.org/@a"
    assert [(e["type"], e["offset"], e["length"]) for e in auto_entities(text)] == [
        ("bot_command", 0, 16), ("mention", 26, 6), ("hashtag", 33, 5), ("url", 39, 16),
    ]
    assert leading_command(text) == ("add", "oneword_bot")
    assert leading_command("hello /start") is None
    assert utf16_len("😀a") == 3
