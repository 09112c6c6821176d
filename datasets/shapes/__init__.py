"""The built-in shapes benchmark: procedural text-to-video clips, captions, the protocol dataset.

Importing this package registers the ``shapes`` dataset kind, the shapes detectors and the
``*:shapes`` metric variants. See docs/shapes.md.
"""

# Detectors and metric variants register themselves in DETECTORS / METRICS on import.
from evalkit.datasets.shapes import detectors as _detectors  # noqa: E402,F401
from evalkit.datasets.shapes import metrics as _metrics  # noqa: E402,F401
from evalkit.datasets.shapes.attributes import (  # noqa: F401
    BACKGROUNDS,
    COLORS,
    LABELS,
    MOTIONS,
    SHAPES,
    SPEEDS,
    VIDEO_MOTIONS,
    ShapeAttributes,
    sample_attributes,
)
from evalkit.datasets.shapes.captions import caption, parse_caption  # noqa: F401
from evalkit.datasets.shapes.dataset import ShapesConfig, ShapesDataset, ShapesTrainingData  # noqa: F401
from evalkit.datasets.shapes.render import render_batch, render_clip  # noqa: F401
