"""The small networks behind the shapes detectors (architectures only; training is elsewhere).

All take uint8 videos (B, T, H, W, 3), resize frames to the detectors' working size 36x64 (the
protocol's size, so usually a no-op) and map 0..255 to [-1, 1]. They are small enough to train on
a CPU in minutes and run in milliseconds per clip.

- ``VideoNet``: a (2+1)D convolutional network; a 2D per-frame stem, then factorised temporal and
  spatial 3D convolutions, mean over time, mean and max over space, a 128-d feature layer (shapes-FVD) and one
  linear head per attribute plus the shape x motion label head (shapes-IS).
- ``FrameNet``: a 2D convolutional network on single frames, mean and max over space; 128-d features (shapes-FID) and heads
  for the attributes a single frame shows (shape, colour, background).
- ``CaptionEncoder``: a bag of word embeddings over the caption grammar's vocabulary followed by
  an MLP; with ``VideoNet`` features and a projection head it forms the shapes-CLIPSIM model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.datasets.shapes.attributes import BACKGROUNDS, COLORS, LABELS, SHAPES, SPEEDS, VIDEO_MOTIONS

#: detectors' working resolution (H, W)
INPUT_SIZE = (36, 64)
FEATURE_DIM = 128
EMBED_DIM = 64
#: metadata ``format`` of the weight files, and their names
FORMAT = "evalkit-shapes-detector/1"
FILES = {"video": "shapes_video.safetensors", "frame": "shapes_frame.safetensors", "clip": "shapes_clip.safetensors"}

#: output classes of each head, in order
VIDEO_HEADS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "motion": VIDEO_MOTIONS,
    "speed": SPEEDS,
    "background": tuple(BACKGROUNDS),
    "label": LABELS,
}
FRAME_HEADS: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "background": tuple(BACKGROUNDS),
}


def prepare(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, 36, 64) in [-1, 1] (bilinear, antialiased resize)."""
    b, t, h, w, _ = videos.shape
    x = videos.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float()
    if (h, w) != INPUT_SIZE:
        x = F.interpolate(x, size=INPUT_SIZE, mode="bilinear", align_corners=False, antialias=True)
    x = x / 127.5 - 1.0
    return x.view(b, t, 3, *INPUT_SIZE).transpose(1, 2)


def _coords(n: int, like: torch.Tensor) -> torch.Tensor:
    """Two channels holding x and y in [-1, 1], so features know where things are."""
    h, w = INPUT_SIZE
    ys = torch.linspace(-1, 1, h, dtype=like.dtype, device=like.device).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1, 1, w, dtype=like.dtype, device=like.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([xs, ys], dim=1)


# Batch normalisation, not group normalisation: with a few-pixel shape on a flat background, per-sample
# group statistics are dominated by the background and shape classes barely trained (25% held-out
# accuracy for 5 classes after 400 steps, against 59% after 120 steps with batch statistics).
def _conv2d(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2 if stride == 1 else 1),
                         nn.BatchNorm2d(cout), nn.ReLU())


def _conv3d(cin: int, cout: int, k: tuple[int, int, int], stride: tuple[int, int, int]) -> nn.Sequential:
    pad = tuple((kk - 1) // 2 for kk in k)
    return nn.Sequential(nn.Conv3d(cin, cout, k, stride=stride, padding=pad), nn.BatchNorm3d(cout), nn.ReLU())


class _Stem(nn.Module):
    """Per-frame 2D stem with coordinate channels: (N, 3, 36, 64) -> (N, 64, 9, 16).

    Full-resolution convolutions before each max pooling, so that shapes a few pixels across keep
    their outline (strided convolutions alone lose the difference between a star and a circle)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            _conv2d(5, 16, 3, 1), _conv2d(16, 24, 3, 1), nn.MaxPool2d(2),
            _conv2d(24, 48, 3, 1), nn.MaxPool2d(2),
            _conv2d(48, 64, 3, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([x, _coords(x.shape[0], x)], dim=1))


def _pool_space(y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2C): mean and max over positions, so a shape is recognised anywhere."""
    return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)


class VideoNet(nn.Module):
    """Pairs of frames are averaged first (half the cost, every frame still counts), then a
    per-frame stem and factorised (2+1)D convolutions; time is pooled, then space (mean and max)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _Stem()
        self.blocks = nn.Sequential(
            _conv3d(64, 64, (3, 1, 1), (1, 1, 1)),
            _conv3d(64, 64, (1, 3, 3), (1, 1, 1)),
            _conv3d(64, 96, (3, 1, 1), (1, 1, 1)),
            _conv3d(96, 96, (1, 3, 3), (1, 1, 1)),
        )
        self.fc = nn.Linear(2 * 96, FEATURE_DIM)
        self.heads = nn.ModuleDict({k: nn.Linear(FEATURE_DIM, len(v)) for k, v in VIDEO_HEADS.items()})

    def features(self, videos: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 128) of uint8 videos (B, T, H, W, 3)."""
        x = prepare(videos)
        if x.shape[2] % 2:
            x = torch.cat([x, x[:, :, -1:]], dim=2)  # repeat the last frame to pair it
        b, c, t, h, w = x.shape
        x = x.view(b, c, t // 2, 2, h, w).mean(3)
        t = t // 2
        y = self.stem(x.transpose(1, 2).reshape(b * t, c, h, w))
        y = y.view(b, t, *y.shape[1:]).transpose(1, 2)  # (B, C, T/2, 9, 16)
        y = self.blocks(y).mean(dim=2)
        return F.relu(self.fc(_pool_space(y)))

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(videos)
        return {k: head(f) for k, head in self.heads.items()}


class FrameNet(nn.Module):
    """The same stem and one more convolution per frame, pooled over space (mean and max)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _Stem()
        self.conv = _conv2d(64, 96, 3, 1)
        self.fc = nn.Linear(2 * 96, FEATURE_DIM)
        self.heads = nn.ModuleDict({k: nn.Linear(FEATURE_DIM, len(v)) for k, v in FRAME_HEADS.items()})

    def features(self, videos: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B*T, 128) of uint8 videos (B, T, H, W, 3), frame-major within a video."""
        x = prepare(videos)
        b, c, t, h, w = x.shape
        y = self.conv(self.stem(x.transpose(1, 2).reshape(b * t, c, h, w)))
        return F.relu(self.fc(_pool_space(y)))

    def forward(self, videos: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(videos)
        return {k: head(f) for k, head in self.heads.items()}


class CaptionEncoder(nn.Module):
    """Mean of word embeddings (unknown words ignored) -> MLP -> unit vector (EMBED_DIM)."""

    def __init__(self, vocabulary: list[str]):
        super().__init__()
        self.vocabulary = list(vocabulary)
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.embed = nn.EmbeddingBag(len(self.vocabulary), 64, mode="mean")
        self.mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, EMBED_DIM))

    def tokenize(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Flat token ids, bag offsets, and the indices of captions with no known word."""
        ids: list[int] = []
        offsets: list[int] = []
        empty: list[int] = []
        for k, text in enumerate(captions):
            offsets.append(len(ids))
            words = [self.index[w] for w in text.lower().replace(".", " ").replace(",", " ").split() if w in self.index]
            if not words:
                empty.append(k)
            ids.extend(words)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long), empty

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids, offsets, _ = self.tokenize(captions)
        return F.normalize(self.mlp(self.embed(ids, offsets)), dim=-1)


class ClipModel(nn.Module):
    """Video and caption towers of shapes-CLIPSIM; both end in unit vectors of EMBED_DIM."""

    def __init__(self, vocabulary: list[str]):
        super().__init__()
        self.video = VideoNet()
        self.video_proj = nn.Sequential(nn.Linear(FEATURE_DIM, 128), nn.ReLU(), nn.Linear(128, EMBED_DIM))
        self.text = CaptionEncoder(vocabulary)
        #: learnable inverse temperature (log scale) of the InfoNCE loss
        self.logit_scale = nn.Parameter(torch.tensor(2.6593))

    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video_proj(self.video.features(videos)), dim=-1)

    def encode_text(self, captions: list[str]) -> torch.Tensor:
        return self.text(captions)
