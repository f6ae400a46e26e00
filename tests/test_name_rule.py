"""The name rule and the edit grammar agree: a word is accepted as a name exactly when every
edit command can take it back as that name (oneword/names.py refuses the words the grammar in
oneword/grammar.py drops), and text that is no name is quoted back only by a short prefix."""

from __future__ import annotations

import pytest

from oneword.grammar import VERBS, CommandError, parse_edit
from oneword.names import GRAMMAR_WORDS, QUOTE_CHARS, InvalidName, concept_name, quoted

# Every word the grammar reads for itself, and a few ordinary ones.
CANDIDATES = sorted(GRAMMAR_WORDS | set(VERBS) | {
    "on", "at", "with", "left", "right", "center", "centre", "middle", "of", "mochi", "x"})
USES = ("add {}", "add {} on the left", "replace dog with {}", "restyle as {}", "restyle {}")


def usable_in_every_command(word: str) -> bool:
    for template in USES:
        try:
            command = parse_edit(template.format(word))
        except CommandError:
            return False
        if command is None or command.concept != word:
            return False
    return True


@pytest.mark.parametrize("word", CANDIDATES)
def test_a_name_is_accepted_exactly_when_every_command_can_use_it(word: str) -> None:
    try:
        concept_name(word)
        accepted = True
    except InvalidName:
        accepted = False
    assert accepted == usable_in_every_command(word)


def test_a_long_word_is_quoted_by_a_short_prefix() -> None:
    word = "x" * 4000
    with pytest.raises(CommandError) as refused:
        parse_edit(f"add {word}")
    assert len(str(refused.value)) < 200 and "x" * (QUOTE_CHARS + 1) not in str(refused.value)
    with pytest.raises(CommandError) as refused:
        parse_edit(f"remove {word}")
    assert len(str(refused.value)) < 200
    assert quoted("mochi") == "mochi" and quoted(word) == "x" * QUOTE_CHARS + "..."
