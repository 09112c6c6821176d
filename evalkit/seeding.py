"""Per-sample seeds that depend only on (base seed, global sample index).

A sample's seed never depends on the batch, the shard or the world size, so any sample can be
regenerated alone and a resumed run with another world size makes the same videos.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def sample_seed(base_seed: int, index: int, stream: str = "") -> int:
    """A 63-bit seed derived from the base seed, the sample index and an optional stream name."""
    digest = hashlib.sha256(f"{base_seed}:{index}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def numpy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
