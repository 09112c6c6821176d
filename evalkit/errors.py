"""Error types that carry the file, the field and the expectation, so messages stay actionable."""

from __future__ import annotations


class EvalkitError(Exception):
    """Base class for errors shown to users without a traceback by the CLI."""


class ConfigError(EvalkitError):
    """A configuration file or override does not match its schema."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        self.file = file
        self.path = path
        where = []
        if file:
            where.append(str(file))
        if path:
            where.append(f"at '{path}'")
        prefix = (" ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class InputError(EvalkitError):
    """Videos, files or datasets that are not what a component expects."""


class WeightsError(EvalkitError):
    """A weight file is missing, or its digest does not match the registry."""


class RunDirError(EvalkitError):
    """A run directory is locked, incomplete or inconsistent."""
