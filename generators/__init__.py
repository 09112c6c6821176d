"""Generators: the Generator contract, reference generators, Snap Video (FIT), U-Net baselines, adapters.

Importing this package registers the built-in generators in ``evalkit.registry.GENERATORS``.
"""

from evalkit.generators.base import Generator, build_generator  # noqa: F401
from evalkit.generators import reference  # noqa: F401  (oracle and degradations)
