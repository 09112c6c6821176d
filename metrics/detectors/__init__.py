"""Detectors: networks plus each reference's preprocessing, turning videos into per-sample features."""
