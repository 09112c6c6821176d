"""Video Inception Score on UCF-101 with the UCF-101-fine-tuned C3D (detector ``c3d-ucf101``).

Two conventions are in use and they give different numbers for the same videos:

- ``is:c3d-styleganv`` (StyleGAN-V ``isv2048_ucf``): the N generated clips' probabilities are shuffled
  with ``numpy.random.RandomState(42).shuffle`` and cut into 10 splits at ``i*N//10``; per split
  ``exp(mean KL(p(y|x) || p(y)))``; mean and population std (ddof 0) over splits. No epsilon: a class
  probability of exactly 0 makes StyleGAN-V's value NaN (0 * log 0); here that raises ``InputError``
  naming the cause instead of reporting NaN.
- ``is:c3d-tgan2`` (TGANv2 ``scripts/compute_inception_score.py``): 10 runs, each on its own 2048 freshly
  generated clips scored as one split, 1e-20 added to the probabilities; mean and population std over
  the runs. So a protocol using it generates 10 x 2048 clips; the samples are taken in index order in
  blocks of N // 10. TGANv2 adds the epsilon to the probabilities before the product as well as inside
  both logs; ``InceptionScore`` adds it inside the logs only, which differs only for probabilities
  below ~1e-4 and by less than 1e-12 relative in the score (checked in ``tests/test_video_is.py``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from evalkit.metrics.inception_score import InceptionScore
from evalkit.registry import METRICS


@METRICS.register("is:c3d-styleganv")
class ISC3DStyleGANV(InceptionScore):
    """StyleGAN-V video IS: 10 splits after a RandomState(42) shuffle, no epsilon."""

    variant: ClassVar[str] = "c3d-styleganv"
    detector: ClassVar[str] = "c3d-ucf101"
    input_kind: ClassVar[Literal["probs", "logits"]] = "probs"
    convention: ClassVar[Literal["splits", "runs"]] = "splits"
    splits: ClassVar[int] = 10
    shuffle_seed: ClassVar[int | None] = 42
    eps: ClassVar[float] = 0.0
    std_ddof: ClassVar[int] = 0


@METRICS.register("is:c3d-tgan2")
class ISC3DTGAN2(InceptionScore):
    """TGANv2 video IS: 10 runs of one split each, probabilities + 1e-20."""

    variant: ClassVar[str] = "c3d-tgan2"
    detector: ClassVar[str] = "c3d-ucf101"
    input_kind: ClassVar[Literal["probs", "logits"]] = "probs"
    convention: ClassVar[Literal["splits", "runs"]] = "runs"
    splits: ClassVar[int] = 10
    shuffle_seed: ClassVar[int | None] = None
    eps: ClassVar[float] = 1e-20
    std_ddof: ClassVar[int] = 0
