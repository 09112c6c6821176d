"""Metrics and detectors. Importing this package registers the built-in variants."""

import importlib as _importlib

from evalkit.metrics import clipsim, detectors, fid, kid  # noqa: F401, E402  (register the variants)
from evalkit.metrics.base import Detector, Metric, MetricValue, build_detector, build_metric  # noqa: F401
from evalkit.metrics.frechet import FrechetMetric, FrechetResult, frechet_distance  # noqa: F401
from evalkit.metrics.inception_score import InceptionScore  # noqa: F401
from evalkit.metrics.stats import FeatureStats  # noqa: F401

# Modules written alongside this package; each registers its variants when imported. A module that
# does not exist yet is skipped, but an import error inside an existing module is raised.
for _module in ("evalkit.metrics.detectors.video", "evalkit.metrics.fvd", "evalkit.metrics.video_is"):
    try:
        _importlib.import_module(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name is None or not (_module == _exc.name or _module.startswith(_exc.name + ".")):
            raise
