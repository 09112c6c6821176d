import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches and weights go to a per-test EVALKIT_HOME, never to the user's."""
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path_factory.mktemp("evalkit_home")))


@pytest.fixture()
def reference_form(monkeypatch):
    """Detectors built in the test run the reference network as loaded, for bit-level comparisons.

    The default on the CPU is the fast form (``evalkit.metrics.detector_form``): the same values to
    float32 rounding, which ``tests/test_detector_form.py`` checks against the reference form.
    """
    monkeypatch.setenv("EVALKIT_DETECTOR_FORM", "reference")
