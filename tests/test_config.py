"""Strict configs: errors name the file, the dotted path, the expectation and the closest key."""

from __future__ import annotations

import pytest

from evalkit.config import apply_overrides, config_hash, load_config
from evalkit.errors import ConfigError
from evalkit.runconfig import RunConfig, expand_generators


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


GOOD = """
name: t
protocols: [shapes]
generators:
  - name: oracle
  - name: oracle-noise
    params: {level: 0.1}
"""


def test_loads_and_hashes_stably(tmp_path):
    a = load_config(RunConfig, write(tmp_path, GOOD))
    b = load_config(RunConfig, write(tmp_path, GOOD.replace("name: t\n", "name: t\n\n")))
    assert a.generators[1].params == {"level": 0.1}
    assert config_hash(a) == config_hash(b)
    c = load_config(RunConfig, write(tmp_path, GOOD), ["batch_size=4"])
    assert c.batch_size == 4 and config_hash(c) != config_hash(a)


def test_unknown_key_names_file_path_and_closest(tmp_path):
    path = write(tmp_path, GOOD + "batch_sise: 4\n")
    with pytest.raises(ConfigError) as exc:
        load_config(RunConfig, path)
    msg = str(exc.value)
    assert str(path) in msg and "'batch_sise'" in msg and "did you mean 'batch_size'" in msg


def test_nested_unknown_key(tmp_path):
    path = write(tmp_path, GOOD.replace("params: {level: 0.1}", "parms: {level: 0.1}"))
    with pytest.raises(ConfigError, match=r"at 'generators\[1\]\.parms'.*did you mean 'params'"):
        load_config(RunConfig, path)


def test_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"at 'batch_size': expected int, got 'four' \(str\)"):
        load_config(RunConfig, write(tmp_path, GOOD + "batch_size: four\n"))
    with pytest.raises(ConfigError, match=r"at 'protocols': expected list of str"):
        load_config(RunConfig, write(tmp_path, GOOD.replace("protocols: [shapes]", "protocols: shapes")))


def test_missing_required_field(tmp_path):
    with pytest.raises(ConfigError, match=r"at 'protocols': missing required field 'protocols' \(expected list of str\)"):
        load_config(RunConfig, write(tmp_path, "generators: [{name: oracle}]\n"))


def test_override_is_validated_too(tmp_path):
    with pytest.raises(ConfigError, match=r"at 'chunk_size': expected int"):
        load_config(RunConfig, write(tmp_path, GOOD), ["chunk_size=big"])
    cfg = load_config(RunConfig, write(tmp_path, GOOD), ["generators.1.params.level=0.3"])
    assert cfg.generators[1].params["level"] == 0.3
    with pytest.raises(ConfigError, match="index 5 out of range"):
        apply_overrides({"generators": [{}]}, ["generators.5.name=x"])
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides({}, ["batch_size"])


def test_post_init_errors_carry_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml.*labels must be unique"):
        load_config(RunConfig, write(tmp_path, GOOD + "  - name: oracle\n"))


def test_sweep_expands_into_labelled_generators(tmp_path):
    cfg = load_config(RunConfig, write(tmp_path, GOOD + "  - name: oracle-blur\n    sweep: {sigma: [0.5, 1.0]}\n"))
    labels = [g.label for g in expand_generators(cfg)]
    assert labels[-2:] == ["oracle-blur[sigma=0.5]", "oracle-blur[sigma=1.0]"]
    assert expand_generators(cfg)[-1].params == {"sigma": 1.0}


def test_generator_protocols_restrict_where_an_entry_runs(tmp_path):
    two = GOOD.replace("protocols: [shapes]", "protocols: [shapes, shapes-hd]")
    cfg = load_config(RunConfig, write(tmp_path, two + "  - name: oracle-blur\n    protocols: [shapes-hd]\n"
                                       "    sweep: {sigma: [0.5, 1.0]}\n"))
    resolved = {g.label: g for g in expand_generators(cfg)}
    assert resolved["oracle"].runs_on("shapes") and resolved["oracle"].runs_on("shapes-hd")
    assert not resolved["oracle-blur[sigma=0.5]"].runs_on("shapes")
    assert resolved["oracle-blur[sigma=1.0]"].runs_on("shapes-hd")
    with pytest.raises(ConfigError, match=r"c\.yaml.*oracle-blur.*\['ucf101'\] are not among"):
        load_config(RunConfig, write(tmp_path, two + "  - name: oracle-blur\n    protocols: [ucf101]\n"))
    with pytest.raises(ConfigError, match="at least one protocol"):
        load_config(RunConfig, write(tmp_path, two + "  - name: oracle-blur\n    protocols: []\n"))


def _shipped_run_configs() -> list:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    return sorted(p for p in [root / "quickstart.yaml", *(root / "ablation").glob("*.yaml")]
                  if "generators" in (p.read_text()))


@pytest.mark.parametrize("path", _shipped_run_configs(), ids=lambda p: p.name)
def test_shipped_run_configs_parse_and_their_generator_params_validate(path):
    from evalkit.config import from_dict
    from evalkit.registry import GENERATORS

    config = load_config(RunConfig, path)
    for gen in expand_generators(config):
        cls = GENERATORS.get(gen.name)
        from_dict(cls.Config, dict(gen.params), file=str(path), path=f"generators[{gen.label}].params")
