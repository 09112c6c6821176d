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
