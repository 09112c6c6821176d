"""Datasets and protocols' data side. Importing this package registers the built-in dataset kinds."""

from evalkit.datasets.base import ProtocolDataset, Sample  # noqa: F401
