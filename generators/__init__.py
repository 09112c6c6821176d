"""Generators: the Generator contract, reference generators, Snap Video (FIT), U-Net baselines, adapters.

Importing this package registers the built-in generators in ``evalkit.registry.GENERATORS``.
"""

from evalkit.generators import (
    diffusers_adapter,  # noqa: F401  (pipelines written elsewhere)
    reference,  # noqa: F401  (oracle and degradations)
    resized,  # noqa: F401  (any generator's videos resized: the bar of an upsampler)
    snapvideo,  # noqa: F401  (FIT, cascade)
    unet_generator,  # noqa: F401  (U-Net with temporal attention)
)
from evalkit.generators.base import Generator, build_generator  # noqa: F401
