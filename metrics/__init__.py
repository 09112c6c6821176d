"""Metrics and detectors. Importing this package registers the built-in variants."""

from evalkit.metrics.base import Detector, Metric, MetricValue, build_detector, build_metric  # noqa: F401
