"""Generators: the Generator contract, reference generators, Snap Video (FIT), U-Net baselines, adapters.

Importing this package registers the built-in generators in ``evalkit.registry.GENERATORS``.
"""

from evalkit.generators.base import Generator, build_generator  # noqa: F401
# reference generators are registered by evalkit.generators.reference (imported below once present)
