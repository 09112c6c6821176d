"""Detectors: uint8 videos -> features, each reproducing one reference's preprocessing and network.

Image detectors (Inception, CLIP) return one row per frame and set ``per_frame = True``; the video
detectors (I3D, C3D, VideoMAE) return one row per video.
"""

from evalkit.metrics.detectors import clip, inception  # noqa: F401  (registers the detectors)
from evalkit.metrics.detectors.inception import ImageDetector  # noqa: F401
