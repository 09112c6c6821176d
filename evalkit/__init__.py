"""t2v-evalkit: a benchmark and evaluation harness for text-to-video generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("t2v-evalkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
