"""The prompt policy: configurable words and regular expressions that a prompt may not
contain, matched on a normalised prompt so that the usual disguises do not slip past.

A prompt is normalised before matching: compatibility forms and look-alike letters folded
(fullwidth letters, Cyrillic and Greek look-alikes, accents), case folded, invisible
characters dropped, digits and symbols inside words read as letters ("n00d", "$ex"), and
runs of one letter shortened ("nuuuude"). Words then match whole words only (plurals
included), so "class", "Essex" and "Scunthorpe" never match "ass", "sex" or their like.
Letters spelled out one at a time ("n u d e", "a n.u.d.e") are joined and searched for the
words anywhere inside. Phrases on the ``allow`` list ("naked eye") are taken out first.

What it cannot see: meaning. Euphemisms, other languages and descriptions that avoid every
listed word pass; the output image check is the second line for those.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# Letters that look like Latin ones, from scripts a disguise borrows from most.
_CONFUSABLES = str.maketrans(
    # Cyrillic, then Greek (escaped: the letters themselves are what a reader cannot tell)
    "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445\u0456\u0458\u0455"
    "\u03b1\u03b2\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7",
    "abeekmhopctyxijsabeikvoptux",
)
# Read as letters only inside a word that has letters too: "4 cats" stays four cats.
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_INVISIBLE = re.compile(r"[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff]")
_TOKEN = re.compile(r"[\w@$!]+")
# Three or more single letters (or digits) with separators between them: "n u d e".
_CHAR = r"(?:[^\W_]|[@$])"  # a letter or digit, or a symbol that stands for one
_SPELLED = re.compile(rf"(?<!{_CHAR})(?:{_CHAR}[\s._*\-+~/\\|]+){{2,}}{_CHAR}(?!{_CHAR})")
_SEPARATORS = re.compile(r"[^\w@$]|_")
_RUNS = re.compile(r"(\w)\1{2,}")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _INVISIBLE.sub("", text).casefold().translate(_CONFUSABLES)


def _spelled_out(folded: str) -> list[str]:
    return [_SEPARATORS.sub("", m.group(0)) for m in _SPELLED.finditer(folded)]


def normalise(text: str) -> str:
    text = _fold(text)
    text = _SPELLED.sub(lambda m: _SEPARATORS.sub("", m.group(0)), text)
    return _unleet(text)


def _unleet(text: str) -> str:
    def unleet(match: re.Match[str]) -> str:
        token = match.group(0)
        return token.translate(_LEET) if any(c.isalpha() for c in token) else token

    text = _TOKEN.sub(unleet, text)
    return _RUNS.sub(r"\1", text)


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class PromptPolicy:
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise PolicyError(
                    f"pattern {pattern!r} is not a regular expression: {exc}"
                ) from exc
        words = sorted({normalise(w).strip() for w in self.words if w.strip()}, key=len)
        alternation = "|".join(re.escape(w) for w in reversed(words))
        whole = re.compile(rf"(?<!\w)(?:{alternation})(?:s|es)?(?!\w)") if words else None
        anywhere = re.compile("|".join(re.escape(w) for w in reversed(words))) if words else None
        allowed = sorted({normalise(a).strip() for a in self.allow if a.strip()}, key=len)
        allow = (
            re.compile(rf"(?<!\w)(?:{'|'.join(re.escape(a) for a in reversed(allowed))})(?!\w)")
            if allowed
            else None
        )
        object.__setattr__(self, "_patterns", tuple(compiled))
        object.__setattr__(self, "_words", whole)
        object.__setattr__(self, "_anywhere", anywhere)
        object.__setattr__(self, "_allow", allow)

    def violation(self, prompt: str) -> str | None:
        """What in ``prompt`` the policy forbids (for the log, never the client), or None."""
        folded = normalise(prompt)
        allow: re.Pattern[str] | None = self._allow  # type: ignore[attr-defined]
        if allow is not None:
            folded = allow.sub(" ", folded)
        words: re.Pattern[str] | None = self._words  # type: ignore[attr-defined]
        if words is not None and (found := words.search(folded)):
            return found.group(0)
        anywhere: re.Pattern[str] | None = self._anywhere  # type: ignore[attr-defined]
        if anywhere is not None:
            for joined in _spelled_out(_fold(prompt)):
                if found := anywhere.search(_unleet(joined)):
                    return found.group(0)
        for pattern in self._patterns:  # type: ignore[attr-defined]
            for text in (prompt, folded):
                if found := pattern.search(text):
                    return str(found.group(0))
        return None


def load_policy(path: Path | None = None) -> PromptPolicy:
    """The policy in ``path`` (TOML: ``words``, ``patterns`` and ``allow``, lists of
    strings), or the one that ships."""
    source = path or Path(str(resources.files("imagegate").joinpath("prompt_policy.toml")))
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{source}: cannot be read as TOML: {exc}") from exc
    lists = [document.get(name, []) for name in ("words", "patterns", "allow")]
    if not all(isinstance(v, list) and all(isinstance(w, str) for w in v) for v in lists):
        raise PolicyError(f"{source}: words, patterns and allow must be lists of strings")
    try:
        return PromptPolicy(*(tuple(v) for v in lists))
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from exc
