"""The shapes detectors, with weights trained by ``train_detectors.py`` and shipped in the package.

+-----------------------+--------------+-------------------------------------------------------------+
| detector              | weights      | output                                                      |
+=======================+==============+=============================================================+
| ``shapes-video``      | shapes-video | (B, 128) penultimate ``VideoNet`` features (shapes-FVD)     |
| ``shapes-video-logits``| shapes-video| (B, 43) logits over shape x motion classes (shapes-IS)      |
| ``shapes-frame``      | shapes-frame | (B*T, 128) ``FrameNet`` features per frame (shapes-FID)     |
| ``shapes-clip``       | shapes-clip  | (B, 1) cosine of video and caption embeddings (CLIPSIM)     |
+-----------------------+--------------+-------------------------------------------------------------+

Frames of any size are resized to 36x64 (bilinear, antialiased) inside the networks. The video
networks were trained on 16-frame clips at 24 fps; they accept any number of frames from
``min_frames`` on, but the held-out accuracy in ``docs/shapes.md`` holds for that format only.
shapes-CLIPSIM embeds the whole clip once (not frame by frame) and returns the raw cosine in
[-1, 1] (no x100 scaling, no clamping at 0). Weight files are safetensors with JSON metadata
(``format``, ``architecture``, training settings, held-out scores); their SHA-256 is registered
below, so retrained files run as "not comparable" until the digests here are updated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import safe_open

from evalkit import weights as weights_registry
from evalkit.datasets.shapes.captions import vocabulary
from evalkit.datasets.shapes.networks import (
    FEATURE_DIM,
    FILES,
    FORMAT,
    VIDEO_HEADS,
    ClipModel,
    FrameNet,
    VideoNet,
)
from evalkit.errors import InputError, WeightsError
from evalkit.metrics.detectors.video_base import RANDOM_WEIGHTS_SEED, VideoDetector
from evalkit.registry import DETECTORS

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: SHA-256 of the shipped files (python -m evalkit.datasets.shapes.train_detectors --seed 0 --threads 2)
SHIPPED_SHA256 = {
    "video": "e53d9f44e2511bb48b73213d33db5ef70627ac8425fee214b9f9989a3688f522",
    "frame": "1510ae1e8ba3d89fc367a5a66ea911a4b5943b4eae1ca41d43344d78f813bde3",
    "clip": "16e6172c9983b1dfafc3eeaca142600a14c66d452361ffde4d5b3e71bc4870b7",
}
_DESCRIPTIONS = {
    "video": "shapes benchmark VideoNet (shapes-FVD features, shapes-IS logits)",
    "frame": "shapes benchmark FrameNet (shapes-FID per-frame features)",
    "clip": "shapes benchmark caption-video model (shapes-CLIPSIM)",
}
_ARCHITECTURES = {"video": "VideoNet", "frame": "FrameNet", "clip": "ClipModel"}

for _key, _file in FILES.items():
    weights_registry.register_weights(
        weights_registry.WeightEntry(
            name=f"shapes-{_key}",
            filename=_file,
            url=f"shipped in the package (evalkit/datasets/shapes/weights/{_file}); rebuild with "
            "`python -m evalkit.datasets.shapes.train_detectors --seed 0`",
            digest=SHIPPED_SHA256[_key],
            digest_kind="sha256-prefix",
            description=_DESCRIPTIONS[_key],
            packaged_path=str(WEIGHTS_DIR / _file),
        )
    )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a shapes weight file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise WeightsError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    try:
        return {k: json.loads(v) for k, v in raw.items()}
    except ValueError:
        raise WeightsError(f"{path}: safetensors metadata is not the JSON written by train_detectors") from None


def load_network(kind: str, path: str | None) -> torch.nn.Module:
    """``VideoNet``/``FrameNet``/``ClipModel`` from a shapes weight file, or seeded random (path None)."""
    arch = _ARCHITECTURES[kind]
    if path is None:
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        net: torch.nn.Module = ClipModel(vocabulary()) if kind == "clip" else (VideoNet() if kind == "video" else FrameNet())
        return net.eval()
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or meta.get("architecture") != arch:
        raise WeightsError(
            f"{path}: expected a shapes {arch} file (metadata format={FORMAT!r}, architecture={arch!r}), "
            f"got format={meta.get('format')!r}, architecture={meta.get('architecture')!r}"
        )
    if kind == "clip":
        vocab = meta.get("vocabulary")
        if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
            raise WeightsError(f"{path}: metadata 'vocabulary' must be a list of words")
        net = ClipModel(vocab)
    else:
        net = VideoNet() if kind == "video" else FrameNet()
    state = weights_registry.load_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: tensors do not match the {arch} architecture ({exc})") from None
    return net.eval()


class _ShapesDetector(VideoDetector):
    kind: ClassVar[str] = "video"
    batch_size: ClassVar[int] = 64
    min_frames: ClassVar[int] = 4
    frames_reason: ClassVar[str] = "the video networks pool over time after two stride-2 temporal convolutions"

    def _load(self, path: str | None) -> Any:
        return load_network(self.kind, path)


@DETECTORS.register("shapes-video")
class ShapesVideoDetector(_ShapesDetector):
    """Penultimate 128-d ``VideoNet`` features (shapes-FVD)."""

    name: ClassVar[str] = "shapes-video"
    weights: ClassVar[str | None] = "shapes-video"
    feature_dim: ClassVar[int] = FEATURE_DIM

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model.features(videos)


@DETECTORS.register("shapes-video-logits")
class ShapesVideoLogitsDetector(_ShapesDetector):
    """Logits over the shape x motion classes (``LABELS``) of the same ``VideoNet`` (shapes-IS)."""

    name: ClassVar[str] = "shapes-video-logits"
    weights: ClassVar[str | None] = "shapes-video"
    feature_dim: ClassVar[int] = len(VIDEO_HEADS["label"])

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model.heads["label"](self.model.features(videos))


@DETECTORS.register("shapes-frame")
class ShapesFrameDetector(_ShapesDetector):
    """Per-frame 128-d ``FrameNet`` features (B*T, 128), frame-major within each video (shapes-FID)."""

    name: ClassVar[str] = "shapes-frame"
    weights: ClassVar[str | None] = "shapes-frame"
    kind: ClassVar[str] = "frame"
    feature_dim: ClassVar[int] = FEATURE_DIM
    min_frames: ClassVar[int] = 1
    frames_reason: ClassVar[str] = ""
    per_frame: ClassVar[bool] = True

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.model.features(videos)

    @torch.inference_mode()
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        videos = self.check_videos(videos)
        b, t = videos.shape[:2]
        out = torch.empty((b * t, self.feature_dim), dtype=torch.float32)
        for start in range(0, b, self.batch_size):
            batch = videos[start : start + self.batch_size].to(self.device)
            out[start * t : (start + batch.shape[0]) * t] = self._forward(batch).float().cpu()
        return out


@DETECTORS.register("shapes-clip")
class ShapesClipDetector(_ShapesDetector):
    """(B, 1) cosine between each clip's embedding and its caption's embedding (shapes-CLIPSIM)."""

    name: ClassVar[str] = "shapes-clip"
    weights: ClassVar[str | None] = "shapes-clip"
    kind: ClassVar[str] = "clip"
    feature_dim: ClassVar[int] = 1
    needs_prompts: ClassVar[bool] = True

    def _forward(self, videos: torch.Tensor) -> torch.Tensor:  # pragma: no cover - __call__ pairs prompts
        raise NotImplementedError("shapes-clip scores (video, prompt) pairs; call the detector with prompts")

    @torch.inference_mode()
    def __call__(self, videos: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        videos = self.check_videos(videos)
        if prompts is None or len(prompts) != videos.shape[0]:
            got = "none" if prompts is None else str(len(prompts))
            raise InputError(f"{self.name}: needs one prompt per video ({videos.shape[0]} videos, got {got} prompts)")
        _, _, empty = self.model.text.tokenize(list(prompts))
        if empty:
            raise InputError(
                f"{self.name}: prompt {prompts[empty[0]]!r} has no word of the shapes caption vocabulary "
                f"({' '.join(self.model.text.vocabulary)})"
            )
        out = torch.empty((videos.shape[0], 1), dtype=torch.float32)
        for start in range(0, videos.shape[0], self.batch_size):
            batch = videos[start : start + self.batch_size].to(self.device)
            v = self.model.encode_video(batch)
            t = self.model.encode_text(list(prompts[start : start + batch.shape[0]])).to(v.device)
            out[start : start + batch.shape[0], 0] = (v * t).sum(-1).float().cpu()
        return out
