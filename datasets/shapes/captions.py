"""Captions of shapes clips: one fixed grammar, generated from attributes and parsed back.

Grammar (lower case, an optional final period)::

    a|an <colour> <shape> [<motion phrase> <speed>] on a|an <background> background

Motion phrases: "moving left|right|up|down", "bouncing", "rotating clockwise|counterclockwise",
"growing", "shrinking"; speed: "slowly" or "quickly". A caption without a motion phrase describes
a still image (motion "still"). ``parse_caption(caption(a)) == a`` for every valid ``a``.
"""

from __future__ import annotations

import re

from evalkit.datasets.shapes.attributes import BACKGROUNDS, COLORS, MOTIONS, SHAPES, SPEEDS, ShapeAttributes
from evalkit.errors import InputError

MOTION_PHRASES: dict[str, str] = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "bouncing": "bouncing",
    "clockwise": "rotating clockwise",
    "counterclockwise": "rotating counterclockwise",
    "growing": "growing",
    "shrinking": "shrinking",
}
assert set(MOTION_PHRASES) | {"still"} == set(MOTIONS)

GRAMMAR = "a|an <colour> <shape> [<motion> <speed>] on a|an <background> background"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(attrs: ShapeAttributes) -> str:
    """The caption of ``attrs`` ("a red circle moving left quickly on a gray background")."""
    subject = f"{_article(attrs.color)} {attrs.color} {attrs.shape}"
    motion = "" if attrs.motion == "still" else f" {MOTION_PHRASES[attrs.motion]} {attrs.speed}"
    return f"{subject}{motion} on {_article(attrs.background)} {attrs.background} background"


def _alt(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PHRASE_TO_MOTION = {v: k for k, v in MOTION_PHRASES.items()}
_PATTERN = re.compile(
    rf"^an? (?P<color>{_alt(list(COLORS))}) (?P<shape>{_alt(list(SHAPES))})"
    rf"(?: (?P<motion>{_alt(list(_PHRASE_TO_MOTION))}) (?P<speed>{_alt(list(SPEEDS))}))?"
    rf" on an? (?P<background>{_alt(list(BACKGROUNDS))}) background$"
)


def parse_caption(text: str) -> ShapeAttributes:
    """Attributes named by a caption of the grammar above; ``InputError`` for anything else."""
    norm = " ".join(text.strip().lower().rstrip(".").split())
    match = _PATTERN.match(norm)
    if match is None:
        raise InputError(
            f"shapes caption {text!r} does not follow the grammar '{GRAMMAR}' with colours {list(COLORS)}, "
            f"shapes {list(SHAPES)}, motions {list(_PHRASE_TO_MOTION)}, speeds {list(SPEEDS)} and "
            f"backgrounds {list(BACKGROUNDS)}"
        )
    phrase = match.group("motion")
    return ShapeAttributes(
        shape=match.group("shape"),
        color=match.group("color"),
        motion=_PHRASE_TO_MOTION[phrase] if phrase else "still",
        speed=match.group("speed"),
        background=match.group("background"),
    )


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted (the caption encoder's vocabulary)."""
    words = {"a", "an", "on", "background"}
    for group in (COLORS, SHAPES, SPEEDS, BACKGROUNDS, MOTION_PHRASES.values()):
        for item in group:
            words.update(item.split())
    return sorted(words)
