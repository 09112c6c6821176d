"""Vectorised rendering of shapes clips: attributes + seed + spec -> uint8 (T, H, W, 3).

Geometry lives in frame-height units and motion is defined per second, so frame ``i`` shows the
scene at time ``i / fps``: a higher frame rate means a smaller per-frame displacement, and
``fps = inf`` gives a still image repeated over T frames (images as infinite-fps videos).
Edges are anti-aliased analytically: each shape is a signed distance function in pixels and the
coverage of a pixel is ``clamp(0.5 - distance, 0, 1)``. Every elementwise step is independent of
the other clips of a batch, so a clip does not depend on the batch it is rendered in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from evalkit.datasets.shapes.attributes import (
    ANGULAR_SPEED,
    BACKGROUNDS,
    BOUNCE_SPEED,
    COLORS,
    GROWTH_RATE,
    LINEAR_SPEED,
    ShapeAttributes,
)
from evalkit.seeding import numpy_rng
from evalkit.video import VideoSpec

#: radius (in frame heights) range of shapes that do not change size
BASE_RADIUS = (0.12, 0.2)
GROW_START_RADIUS = (0.07, 0.1)
SHRINK_START_RADIUS = (0.22, 0.3)
#: growth and shrinking stop at these radii (frame heights)
RADIUS_LIMITS = (0.03, 0.45)
COLOR_JITTER = 12.0
BACKGROUND_JITTER = 10.0
#: clips rendered together (keeps the working set in cache)
CHUNK = 32


def frame_times(spec: VideoSpec) -> np.ndarray:
    """Seconds of each frame; all zero at infinite fps."""
    if math.isinf(spec.fps):
        return np.zeros(spec.frames)
    return np.arange(spec.frames, dtype=np.float64) / float(spec.fps)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold ``x`` into [lo, hi] as a point bouncing off both walls."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, (lo + hi) / 2)
    u = np.mod(x - lo, 2 * span)
    return lo + span - np.abs(u - span)


def _place(rng: np.random.Generator, extent: float, margin: float, travel: float) -> float:
    """Start coordinate so that a path of signed length ``travel`` stays in [margin, extent-margin]."""
    lo, hi = margin, extent - margin
    if hi - lo <= abs(travel):
        return (extent - travel) / 2  # the path is longer than the frame: centre it
    mid = rng.uniform(lo + abs(travel) / 2, hi - abs(travel) / 2)
    return mid - travel / 2


def clip_geometry(attrs: ShapeAttributes, seed: int, spec: VideoSpec) -> tuple[np.ndarray, ...]:
    """Per-frame (cx, cy, radius, angle) in frame-height units and radians, plus colours.

    Returns (cx, cy, radius, angle, color, bg_top, bg_bottom) with the first four of shape (T,).
    All nuisance draws come from ``seed`` in a fixed order, whatever the attributes.
    """
    rng = numpy_rng(seed)
    t = frame_times(spec)
    aspect = spec.width / spec.height
    draws = rng.uniform(size=8)  # fixed number of draws: nuisances do not shift with attributes
    color_noise = rng.uniform(-1.0, 1.0, size=3) * COLOR_JITTER
    bg_noise = rng.uniform(-1.0, 1.0, size=3) * BACKGROUND_JITTER
    sub = np.random.default_rng(rng.integers(0, 2**63 - 1))
    speed = attrs.speed or "slowly"
    duration = float(t[-1]) if len(t) else 0.0

    def lerp(lo_hi: tuple[float, float], u: float) -> float:
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u

    radius0 = lerp(BASE_RADIUS, draws[0])
    angle0 = 0.0
    motion = attrs.motion
    if motion == "growing":
        radius0 = lerp(GROW_START_RADIUS, draws[0])
    elif motion == "shrinking":
        radius0 = lerp(SHRINK_START_RADIUS, draws[0])
    if motion in ("growing", "shrinking"):
        sign = 1.0 if motion == "growing" else -1.0
        radius = np.clip(radius0 * np.exp(sign * GROWTH_RATE[speed] * t), *RADIUS_LIMITS)
    else:
        radius = np.full_like(t, radius0)
    margin = float(radius.max()) * 1.1
    cx = np.full_like(t, _place(sub, aspect, margin, 0.0))
    cy = np.full_like(t, _place(sub, 1.0, margin, 0.0))
    angle = np.full_like(t, angle0)
    if motion in ("left", "right"):
        v = LINEAR_SPEED[speed] * (1.0 if motion == "right" else -1.0)
        cx = _place(sub, aspect, margin, v * duration) + v * t
    elif motion in ("up", "down"):
        v = LINEAR_SPEED[speed] * (1.0 if motion == "down" else -1.0)  # image y grows downwards
        cy = _place(sub, 1.0, margin, v * duration) + v * t
    elif motion == "bouncing":
        heading = math.radians(20.0 + 50.0 * draws[1]) + (math.pi / 2) * math.floor(4 * draws[2])
        v = BOUNCE_SPEED[speed]
        cx = _reflect(cx + v * math.cos(heading) * t, margin, aspect - margin)
        cy = _reflect(cy + v * math.sin(heading) * t, margin, 1.0 - margin)
    elif motion in ("clockwise", "counterclockwise"):
        angle0 = 2 * math.pi * draws[3]
        w = ANGULAR_SPEED[speed] * (1.0 if motion == "clockwise" else -1.0)
        angle = angle0 + w * t
    color = np.asarray(COLORS[attrs.color], dtype=np.float64) + color_noise
    top, bottom = BACKGROUNDS[attrs.background]
    bg_top = np.asarray(top, dtype=np.float64) + bg_noise
    bg_bottom = np.asarray(bottom, dtype=np.float64) + bg_noise
    return cx, cy, radius, angle, color, bg_top, bg_bottom


# --- signed distances (pixels; negative inside), local coordinates with y pointing up -------------


def _sd_circle(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + y * y) - r


def _sd_box(x: torch.Tensor, y: torch.Tensor, bx: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
    dx = x.abs() - bx
    dy = y.abs() - by
    outside = torch.sqrt(dx.clamp(min=0) ** 2 + dy.clamp(min=0) ** 2)
    return outside + torch.maximum(dx, dy).clamp(max=0)


def _sd_square(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return _sd_box(x, y, 0.82 * r, 0.82 * r)


def _sd_cross(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.minimum(_sd_box(x, y, r, 0.36 * r), _sd_box(x, y, 0.36 * r, r))


def _sd_triangle(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Equilateral triangle pointing up, centroid at the origin, circumradius 1.25 r."""
    half = 1.25 * r * math.sqrt(3) / 2  # half the side length
    k = math.sqrt(3.0)
    px = x.abs() - half
    py = y + half / k
    fold = (px + k * py) > 0
    qx = torch.where(fold, (px - k * py) / 2, px)
    qy = torch.where(fold, (-k * px - py) / 2, py)
    qx = qx - torch.minimum(torch.maximum(qx, -2 * half), torch.zeros_like(qx))
    return -torch.sqrt(qx * qx + qy * qy) * torch.sign(qy)


_K1 = (math.cos(math.radians(36)), -math.sin(math.radians(36)))


def _sd_star(x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Five-pointed star pointing up, outer radius 1.3 r, inner/outer ratio 0.45.

    The plane is folded by the star's mirror lines into one wedge, where the distance to the
    single edge from the tip is exact.
    """
    outer = 1.3 * r
    k1x, k1y = _K1
    k2x, k2y = -k1x, k1y
    px = x.abs()
    py = y
    d = (k1x * px + k1y * py).clamp(min=0)
    px, py = px - 2 * d * k1x, py - 2 * d * k1y
    d = (k2x * px + k2y * py).clamp(min=0)
    px, py = px - 2 * d * k2x, py - 2 * d * k2y
    px = px.abs()
    py = py - outer
    ratio = 0.45
    bax, bay = -ratio * k1y, ratio * k1x - 1.0  # edge direction from the tip, scaled by outer
    h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(min=0)
    h = torch.minimum(h, outer)
    dist = torch.sqrt((px - bax * h) ** 2 + (py - bay * h) ** 2)
    return dist * torch.sign(py * bax - px * bay)


SDF = {
    "circle": _sd_circle,
    "square": _sd_square,
    "triangle": _sd_triangle,
    "cross": _sd_cross,
    "star": _sd_star,
}


def _coverage(shape: str, geo: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coverage (n, T, H, W) in [0, 1] of clips of one shape; geo (n, T, 4) in pixels."""
    cx, cy, r, ang = (geo[..., i, None, None] for i in range(4))
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    dx = xs.view(1, 1, 1, width) - cx
    dy = ys.view(1, 1, height, 1) - cy
    c, s = torch.cos(ang), torch.sin(ang)
    # rotate by -angle (clockwise on screen for positive angle), flip y to point up
    lx = c * dx + s * dy
    ly = -(-s * dx + c * dy)
    return (0.5 - SDF[shape](lx, ly, r)).clamp_(0.0, 1.0)


def _render_chunk(geos: list[tuple[np.ndarray, ...]], shapes: list[str], spec: VideoSpec) -> torch.Tensor:
    n, h, w = len(geos), spec.height, spec.width
    px = float(h)  # frame-height units -> pixels
    geo = torch.tensor(
        np.stack([np.stack([g[0] * px, g[1] * px, g[2] * px, g[3]], axis=-1) for g in geos]), dtype=torch.float32
    )  # (n, T, 4)
    alpha = torch.empty(n, spec.frames, h, w)
    for shape in sorted(set(shapes)):
        idx = [i for i, s in enumerate(shapes) if s == shape]
        alpha[idx] = _coverage(shape, geo[idx], h, w)
    color = torch.tensor(np.stack([g[4] for g in geos]), dtype=torch.float32).view(n, 1, 1, 1, 3)
    top = torch.tensor(np.stack([g[5] for g in geos]), dtype=torch.float32).view(n, 1, 1, 1, 3)
    bottom = torch.tensor(np.stack([g[6] for g in geos]), dtype=torch.float32).view(n, 1, 1, 1, 3)
    ramp = ((torch.arange(h, dtype=torch.float32) + 0.5) / h).view(1, 1, h, 1, 1)
    background = top + (bottom - top) * ramp  # (n, 1, H, 1, 3)
    frames = alpha.unsqueeze(-1) * (color - background)
    frames += background + 0.5  # + 0.5, then truncation: round half up
    return frames.clamp_(0, 255).to(torch.uint8)


def render_batch(attrs: Sequence[ShapeAttributes], seeds: Sequence[int], spec: VideoSpec) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) clips; clip ``i`` depends only on (attrs[i], seeds[i], spec)."""
    if len(attrs) != len(seeds):
        raise ValueError(f"render_batch: got {len(attrs)} attribute sets but {len(seeds)} seeds")
    out = torch.empty((len(attrs), *spec.shape), dtype=torch.uint8)
    for start in range(0, len(attrs), CHUNK):
        stop = min(start + CHUNK, len(attrs))
        geos = [clip_geometry(a, int(s), spec) for a, s in zip(attrs[start:stop], seeds[start:stop], strict=True)]
        out[start:stop] = _render_chunk(geos, [a.shape for a in attrs[start:stop]], spec)
    return out


def render_clip(attrs: ShapeAttributes, seed: int, spec: VideoSpec) -> torch.Tensor:
    """uint8 (T, H, W, 3): one clip showing ``attrs``, nuisances drawn from ``seed``."""
    return render_batch([attrs], [seed], spec)[0]
