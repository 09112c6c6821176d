"""FVD variants: which detector, which covariance divisor, which matrix square root, which order.

+---------------------------+----------------------+---------+-------------+------------------------------+
| variant                   | detector             | divisor | sqrt        | reference                    |
+===========================+======================+=========+=============+==============================+
| ``fvd:styleganv``         | i3d-torchscript      | N       | scipy-real  | StyleGAN-V ``fvd2048_16f``   |
| ``fvd:videogpt``          | i3d-videogpt         | N-1     | svd-torch   | VideoGPT ``fvd/fvd.py``      |
| ``fvd:tats``              | i3d-tats             | N-1     | svd-torch   | TATS ``tats/fvd/fvd.py``     |
| ``fvd:cd-fvd-i3d``        | i3d-cd-fvd           | N       | scipy-real  | cd-fvd 0.1.1, model='i3d'    |
| ``fvd:cd-fvd-videomae``   | videomae-v2-cd-fvd   | N       | scipy-real  | cd-fvd 0.1.1, model='videomae'|
| ``fvd:fvd-comparison``    | i3d-torchscript      | N-1     | scipy-real  | fvd-comparison ``our_fvd.py``|
+---------------------------+----------------------+---------+-------------+------------------------------+

Order of the two sets inside the square root (``real_first``): StyleGAN-V computes
``sqrtm(S_gen @ S_real)`` and ``|mu_gen - mu_real|^2``; cd-fvd ``sqrtm(S_real @ S_fake)``; VideoGPT/TATS
pass the real set first to ``trace_sqrt_product``. The features are float32 from the detectors; the
statistics are float64 sums (as StyleGAN-V and cd-fvd keep them). VideoGPT/TATS compute mean and
covariance in float32 torch; here they come from the float64 sums and only the SVD step runs in
float32, which moves those two variants in the last float32 digits at most.

Clip selection (frames, start, stride) and the number of real/fake videos belong to the protocol, not
to these classes; StyleGAN-V's numbers use 2048 16-frame clips per set.
"""

from __future__ import annotations

from typing import ClassVar

from evalkit.metrics.frechet import FrechetMetric, SqrtMethod
from evalkit.metrics.stats import CovDivisor
from evalkit.registry import METRICS


class FVD(FrechetMetric):
    """Base of the FVD variants (Fréchet distance between video features)."""

    name: ClassVar[str] = "fvd"


@METRICS.register("fvd:styleganv")
class FVDStyleGANV(FVD):
    """StyleGAN-V: TorchScript I3D on uint8 clips, divisor N, ``real(... sqrtm(S_gen S_real) ...)``."""

    variant: ClassVar[str] = "styleganv"
    detector: ClassVar[str] = "i3d-torchscript"
    cov_divisor: ClassVar[CovDivisor] = "N"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-real"
    real_first: ClassVar[bool] = False


@METRICS.register("fvd:videogpt")
class FVDVideoGPT(FVD):
    """VideoGPT: PyTorch I3D after shorter-side resize + crop, divisor N-1, TF-GAN SVD trick in torch."""

    variant: ClassVar[str] = "videogpt"
    detector: ClassVar[str] = "i3d-videogpt"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "svd-torch"
    real_first: ClassVar[bool] = True


@METRICS.register("fvd:tats")
class FVDTats(FVD):
    """TATS: PyTorch I3D after squash-resize, divisor N-1, TF-GAN SVD trick in torch."""

    variant: ClassVar[str] = "tats"
    detector: ClassVar[str] = "i3d-tats"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "svd-torch"
    real_first: ClassVar[bool] = True


@METRICS.register("fvd:cd-fvd-i3d")
class FVDCdFvdI3D(FVD):
    """cd-fvd ``cdfvd('i3d').compute_fvd``: TATS features, divisor N, ``real(... sqrtm(S_real S_fake) ...)``."""

    variant: ClassVar[str] = "cd-fvd-i3d"
    detector: ClassVar[str] = "i3d-cd-fvd"
    cov_divisor: ClassVar[CovDivisor] = "N"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-real"
    real_first: ClassVar[bool] = True


@METRICS.register("fvd:cd-fvd-videomae")
class FVDCdFvdVideoMAE(FVD):
    """cd-fvd ``cdfvd('videomae')``: VideoMAE-v2 ViT-g 1408-d features, divisor N, scipy sqrtm."""

    variant: ClassVar[str] = "cd-fvd-videomae"
    detector: ClassVar[str] = "videomae-v2-cd-fvd"
    cov_divisor: ClassVar[CovDivisor] = "N"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-real"
    real_first: ClassVar[bool] = True


@METRICS.register("fvd:fvd-comparison")
class FVDComparison(FVD):
    """fvd-comparison ``our_fvd.py`` (the TorchScript port checked against TF): ``np.cov`` (N-1), scipy sqrtm.

    Its README's 10.1381 (128 vs 128 uniform videos) used this formula, not StyleGAN-V's divisor N.
    """

    variant: ClassVar[str] = "fvd-comparison"
    detector: ClassVar[str] = "i3d-torchscript"
    cov_divisor: ClassVar[CovDivisor] = "N-1"
    sqrt_method: ClassVar[SqrtMethod] = "scipy-real"
    real_first: ClassVar[bool] = False
