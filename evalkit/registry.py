"""Named registries for generators, metrics, detectors and protocols.

Components register themselves with a decorator (``@GENERATORS.register("fit")``); third-party
packages add theirs through the entry-point groups ``evalkit.generators`` and ``evalkit.metrics``.
Built-in components live in modules that are imported lazily the first time a registry is read,
so ``import evalkit`` stays cheap.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from evalkit.errors import EvalkitError

T = TypeVar("T")


class RegistryError(EvalkitError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A mapping from names to components with glob listing and entry-point plugins."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (), entry_point_group: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._builtin_modules = builtin_modules
        self._entry_point_group = entry_point_group
        self._loaded = False

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj, overwrite=overwrite)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        if name in self._items and not overwrite and self._items[name] is not obj:
            raise RegistryError(f"{self.kind} '{name}' is already registered by {self._items[name]!r}")
        self._items[name] = obj

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        if self._entry_point_group:
            for ep in entry_points(group=self._entry_point_group):
                loaded = ep.load()
                # An entry point may name a component (registered under the entry point's name)
                # or a module whose import registers components itself.
                if not isinstance(loaded, type(importlib)) and ep.name not in self._items:
                    self.add(ep.name, loaded)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint} (see `evalkit list {self.kind}s`)"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def items(self, pattern: str = "*") -> Iterator[tuple[str, T]]:
        for name in self.names(pattern):
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __len__(self) -> int:
        self._load()
        return len(self._items)


GENERATORS: Registry[Any] = Registry("generator", ("evalkit.generators",), "evalkit.generators")
METRICS: Registry[Any] = Registry("metric", ("evalkit.metrics", "evalkit.datasets"), "evalkit.metrics")
DETECTORS: Registry[Any] = Registry("detector", ("evalkit.metrics", "evalkit.datasets"))
DATASETS: Registry[Any] = Registry("dataset", ("evalkit.datasets",))
# Named protocol files (``configs/protocols/**.yaml``) register themselves in evalkit.protocols.
PROTOCOLS: Registry[Any] = Registry("protocol", ("evalkit.protocols",))
