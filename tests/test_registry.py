from __future__ import annotations

import pytest

from evalkit.generators.base import build_generator
from evalkit.registry import GENERATORS, Registry, RegistryError


def test_register_get_and_glob():
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    class Alpha: ...

    reg.add("beta", object())
    assert reg.get("alpha") is Alpha
    assert reg.names("a*") == ["alpha"]
    assert len(reg) == 2
    with pytest.raises(RegistryError, match="unknown widget 'alpa'; did you mean 'alpha'"):
        reg.get("alpa")
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("alpha", object())


def test_builtin_generators_are_registered():
    assert {"oracle", "oracle-frozen", "oracle-shuffled", "oracle-noise"} <= set(GENERATORS.names())


def test_generator_params_are_strict():
    with pytest.raises(Exception, match=r"unknown key 'levle'.*did you mean 'level'"):
        build_generator("oracle-noise", {"levle": 0.1})
    with pytest.raises(Exception, match="level must be >= 0"):
        build_generator("oracle-noise", {"level": -1.0})


def test_entry_point_plugins(monkeypatch):
    class FakeEP:
        name = "plugin-gen"

        def load(self):
            return "the-plugin"

    reg: Registry = Registry("generator", (), "evalkit.generators")
    monkeypatch.setattr("evalkit.registry.entry_points", lambda group: [FakeEP()] if group == "evalkit.generators" else [])
    assert reg.get("plugin-gen") == "the-plugin"
