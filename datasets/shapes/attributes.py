"""The attribute space of the shapes benchmark: what a clip shows and what its caption says.

Attributes are the labels of a clip (shape, colour, motion, speed, background). Everything else a
clip shows (start position, size, initial angle, bounce direction, small colour jitter) is drawn
from the clip's seed, so one caption matches many clips.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
#: RGB of each shape colour (a small per-clip jitter is added when rendering)
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 100, 235),
    "yellow": (235, 215, 40),
    "purple": (160, 70, 210),
    "orange": (245, 140, 30),
    "white": (240, 240, 240),
}
#: background name -> (top colour, bottom colour); plain backgrounds use the same colour twice
BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "black": ((15, 15, 15), (15, 15, 15)),
    "gray": ((120, 120, 120), (120, 120, 120)),
    "navy": ((20, 28, 72), (20, 28, 72)),
    "gradient": ((25, 70, 95), (95, 30, 70)),
}
#: motions of video clips; "still" is the motion of images (no motion phrase in the caption)
VIDEO_MOTIONS: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "bouncing",
    "clockwise",
    "counterclockwise",
    "growing",
    "shrinking",
)
MOTIONS: tuple[str, ...] = VIDEO_MOTIONS + ("still",)
SPEEDS: tuple[str, ...] = ("slowly", "quickly")

#: shapes whose rotation cannot be seen
ROTATION_INVARIANT: frozenset[str] = frozenset({"circle"})
#: (colour, background) pairs with too little contrast to be drawn
LOW_CONTRAST: frozenset[tuple[str, str]] = frozenset({("blue", "navy"), ("purple", "navy")})

#: motion speeds, defined per second so that the frame rate changes the per-frame displacement
LINEAR_SPEED = {"slowly": 0.4, "quickly": 0.9}  # frame heights per second
BOUNCE_SPEED = {"slowly": 0.6, "quickly": 1.4}  # frame heights per second
ANGULAR_SPEED = {"slowly": math.radians(120.0), "quickly": math.radians(300.0)}  # radians per second
GROWTH_RATE = {"slowly": math.log(1.6), "quickly": math.log(3.0)}  # log size per second


@dataclasses.dataclass(frozen=True)
class ShapeAttributes:
    """The labelled content of one clip. ``speed`` is None exactly when ``motion`` is "still"."""

    shape: str
    color: str
    motion: str
    speed: str | None
    background: str

    def __post_init__(self) -> None:
        checks = (("shape", SHAPES), ("color", tuple(COLORS)), ("motion", MOTIONS), ("background", tuple(BACKGROUNDS)))
        for field, allowed in checks:
            if getattr(self, field) not in allowed:
                raise ValueError(f"ShapeAttributes.{field} must be one of {list(allowed)}, got {getattr(self, field)!r}")
        if self.motion == "still":
            if self.speed is not None:
                raise ValueError(f"ShapeAttributes.speed must be None for a still shape, got {self.speed!r}")
        elif self.speed not in SPEEDS:
            raise ValueError(f"ShapeAttributes.speed must be one of {list(SPEEDS)}, got {self.speed!r}")

    @property
    def label(self) -> str:
        """The class used by shapes-IS: shape and motion (``"square-clockwise"``)."""
        return f"{self.shape}-{self.motion}"

    def as_still(self) -> ShapeAttributes:
        return dataclasses.replace(self, motion="still", speed=None)

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


def valid(attrs: ShapeAttributes) -> bool:
    """Whether a combination can be seen: no rotating circles, no low-contrast colours."""
    if attrs.shape in ROTATION_INVARIANT and attrs.motion in ("clockwise", "counterclockwise"):
        return False
    return (attrs.color, attrs.background) not in LOW_CONTRAST


def _labels() -> tuple[str, ...]:
    return tuple(
        f"{s}-{m}"
        for s in SHAPES
        for m in VIDEO_MOTIONS
        if not (s in ROTATION_INVARIANT and m in ("clockwise", "counterclockwise"))
    )


#: the class set of shapes-IS (shape x video motion, rotating circles excluded)
LABELS: tuple[str, ...] = _labels()


def sample_attributes(
    rng: np.random.Generator,
    *,
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str] = tuple(COLORS),
    motions: Sequence[str] = VIDEO_MOTIONS,
    speeds: Sequence[str] = SPEEDS,
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
) -> ShapeAttributes:
    """Draw attributes: each field uniform over the allowed values, invisible combinations redrawn."""
    for _ in range(1000):
        motion = str(rng.choice(list(motions)))
        attrs = ShapeAttributes(
            shape=str(rng.choice(list(shapes))),
            color=str(rng.choice(list(colors))),
            motion=motion,
            speed=None if motion == "still" else str(rng.choice(list(speeds))),
            background=str(rng.choice(list(backgrounds))),
        )
        if valid(attrs):
            return attrs
    raise ValueError(
        f"no visible attribute combination in shapes={list(shapes)}, colors={list(colors)}, "
        f"motions={list(motions)}, backgrounds={list(backgrounds)}"
    )
