"""The prompt policy: disguised forbidden words are caught, innocent words that contain
them are not."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.domain.prompt_policy import PolicyError, PromptPolicy, load_policy, normalise

POLICY = load_policy()
WORDS = ["nude", "porn", "naked", "hentai", "erotic"]
LEET = {"o": "0", "e": "3", "a": "4", "i": "1", "s": "$"}
CYRILLIC = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440"}


@st.composite
def disguised(draw: st.DrawFn) -> str:
    """A forbidden word in the usual disguises, inside an ordinary sentence."""
    word = draw(st.sampled_from(WORDS))
    letters = []
    for char in word:
        kind = draw(st.sampled_from(["plain", "upper", "leet", "cyrillic", "fullwidth", "zwsp"]))
        if kind == "upper":
            char = char.upper()
        elif kind == "leet" and char in LEET:
            char = LEET[char]
        elif kind == "cyrillic" and char in CYRILLIC:
            char = CYRILLIC[char]
        elif kind == "fullwidth":
            char = chr(ord(char) - ord("a") + 0xFF41)
        elif kind == "zwsp":
            char += "\u200b"
        letters.append(char)
    if draw(st.booleans()):  # spelled out: "n u d e", "n.u.d.e"
        glued = draw(st.sampled_from([" ", ".", "-", "_", " . "])).join(letters)
    else:
        glued = "".join(letters)
    before = draw(st.sampled_from(["", "a ", "photo of a ", "A dramatic, "]))
    after = draw(st.sampled_from(["", " woman", " on a beach", ", 4k"]))
    return before + glued + after


@given(disguised())
def test_disguised_forbidden_words_are_caught(prompt: str) -> None:
    assert POLICY.violation(prompt) is not None, normalise(prompt)


INNOCENT = [
    "a red circle on the left",
    "Scunthorpe United at the Essex ground",
    "a classy assassin with a sextant",
    "an analyst's cocktail, 4 cats and 3 dogs",
    "a naked mole rat seen with the naked eye",
    "the sex of the chick is unknown",
    "a hiker in a gore-tex jacket",
    "Middlesex skyline, 1990s postcard",
]


@pytest.mark.parametrize("prompt", INNOCENT)
def test_innocent_prompts_containing_listed_letters_pass(prompt: str) -> None:
    assert POLICY.violation(prompt) is None


def test_patterns_match_the_prompt_as_written_and_normalised() -> None:
    policy = PromptPolicy(patterns=(r"\bkill\s+all\b",))
    assert policy.violation("KILL   all humans") == "KILL   all"
    assert policy.violation("k1ll all") == "kill all"
    assert policy.violation("skill alley") is None


def test_the_shipped_policy_refuses_sexual_content_with_minors() -> None:
    assert POLICY.violation("underage girl, topless") is not None
    assert POLICY.violation("a naked child") is not None
    assert POLICY.violation("a child flying a kite") is None


def test_a_policy_file_with_a_broken_pattern_says_where(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('words = ["x"]\npatterns = ["(unclosed"]\n')
    with pytest.raises(PolicyError, match=r"policy.toml: pattern '\(unclosed' is not a regular"):
        load_policy(path)
    path.write_text("words = [1]\n")
    with pytest.raises(PolicyError, match="must be lists of strings"):
        load_policy(path)


@given(st.text(max_size=200))
def test_any_text_is_checked_without_error(text: str) -> None:
    POLICY.violation(text)
