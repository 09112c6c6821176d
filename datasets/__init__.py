"""Datasets and protocols' data side. Importing this package registers the built-in dataset kinds."""

import evalkit.datasets.folder  # noqa: F401,E402
import evalkit.datasets.msrvtt  # noqa: F401,E402
import evalkit.datasets.shapes  # noqa: F401,E402
import evalkit.datasets.ucf101  # noqa: F401,E402
from evalkit.datasets.base import ProtocolDataset, Sample  # noqa: F401
