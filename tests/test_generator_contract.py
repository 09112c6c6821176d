"""The Generator contract, checked for every registered generator (current and future).

For each name in ``GENERATORS.names()``:

- the same seed gives the same video alone, in a batch (at any position) and on a second call;
- videos are uint8 (B, T, H, W, 3) of the requested spec, and different seeds give different videos;
- ``config_dict()`` is plain data that survives YAML and rebuilds a generator making the same videos;
- a spec the generator cannot honour stops with an ``EvalkitError`` that names the request.

How a generator takes part (the hooks are optional class attributes of the generator class):

- ``test_instance(workdir: Path) -> Generator`` (classmethod): a small instance for tests, for
  generators that need files (checkpoints, pipeline directories); it writes what it needs under
  ``workdir`` and its config must point there. Without it the suite builds ``cls(cls.Config())``.
- ``test_spec: VideoSpec``: a spec the test instance can produce (default ``DEFAULT_SPEC``).
- ``test_bad_spec: VideoSpec | None``: a spec it must refuse (default: ``test_spec`` with one more
  row, which no down-sampling network or bound dataset can honour); None skips that check.

Every instance is bound to a shapes dataset of the spec (``Generator.bind``) and receives shapes
captions, so reference generators (``oracle`` and its degradations) run unchanged.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from evalkit.datasets.shapes import ShapesConfig, ShapesDataset
from evalkit.errors import EvalkitError
from evalkit.generators.base import Generator, build_generator
from evalkit.registry import GENERATORS
from evalkit.video import VideoSpec

DEFAULT_SPEC = VideoSpec(frames=4, height=16, width=16, fps=8.0)
NAMES = GENERATORS.names()


def _spec(cls: type) -> VideoSpec:
    return getattr(cls, "test_spec", DEFAULT_SPEC)


def _bad_spec(cls: type) -> VideoSpec | None:
    if hasattr(cls, "test_bad_spec"):
        return cls.test_bad_spec
    spec = _spec(cls)
    return dataclasses.replace(spec, height=spec.height + 1)


def _bind(gen: Generator, spec: VideoSpec) -> Generator:
    gen.bind(ShapesDataset(ShapesConfig(), spec))
    return gen


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """One test instance per generator name, built once (some load files)."""
    made: dict[str, Generator] = {}

    def get(name: str) -> Generator:
        if name not in made:
            cls = GENERATORS.get(name)
            factory = getattr(cls, "test_instance", None)
            if factory is not None:
                made[name] = factory(tmp_path_factory.mktemp(name))
            else:
                try:
                    made[name] = cls(cls.Config())
                except EvalkitError as exc:
                    pytest.fail(f"{name}: the default config does not build ({exc}); give {cls.__name__} a "
                                "test_instance(workdir) classmethod (see this module's docstring)")
        return made[name]

    return get


def _plan(spec: VideoSpec, n: int = 3):
    samples = ShapesDataset(ShapesConfig(), spec).plan(n, base_seed=11)
    return [s.prompt for s in samples], [s.seed for s in samples]


def _same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Equal up to one grey level (float reductions may differ in the last bit across batch sizes)."""
    assert a.shape == b.shape, what
    diff = (a.int() - b.int()).abs()
    assert int(diff.max()) <= 1 and float(diff.float().mean()) < 0.01, f"{what}: max diff {int(diff.max())}"


def test_registry_is_not_empty():
    assert "oracle" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_seed_gives_the_same_video_alone_or_in_a_batch(name, instances):
    gen = instances(name)
    spec = _spec(type(gen))
    _bind(gen, spec)
    prompts, seeds = _plan(spec)
    batch = gen.generate(prompts, seeds, spec)
    for i in (2, 0):
        alone = gen.generate([prompts[i]], [seeds[i]], spec)
        _same(alone[0], batch[i], f"{name}: sample {i} alone vs in a batch")
    swapped = gen.generate(prompts[::-1], seeds[::-1], spec)
    _same(swapped.flip(0), batch, f"{name}: batch order")
    again = gen.generate(prompts, seeds, spec)
    _same(again, batch, f"{name}: second call")


@pytest.mark.parametrize("name", NAMES)
def test_output_follows_the_spec(name, instances):
    gen = instances(name)
    spec = _spec(type(gen))
    _bind(gen, spec)
    prompts, seeds = _plan(spec, 2)
    videos = gen.generate(prompts, seeds, spec)
    assert videos.dtype == torch.uint8
    assert tuple(videos.shape) == (2, spec.frames, spec.height, spec.width, 3)
    assert videos.device.type == "cpu"
    other = gen.generate([prompts[0]], [seeds[0] + 1], spec)
    assert not torch.equal(other[0], videos[0]), f"{name}: the seed does not change the video"
    empty = gen.generate([], [], spec)
    assert tuple(empty.shape) == (0, *spec.shape)


@pytest.mark.parametrize("name", NAMES)
def test_saved_config_rebuilds_the_same_generator(name, instances):
    gen = instances(name)
    spec = _spec(type(gen))
    _bind(gen, spec)
    saved = yaml.safe_load(yaml.safe_dump(gen.config_dict()))  # plain data only
    rebuilt = _bind(build_generator(name, saved), spec)
    assert rebuilt.config_dict() == gen.config_dict()
    prompts, seeds = _plan(spec, 2)
    _same(rebuilt.generate(prompts, seeds, spec), gen.generate(prompts, seeds, spec), f"{name}: rebuilt")


@pytest.mark.parametrize("name", NAMES)
def test_wrong_spec_is_a_clear_error(name, instances):
    gen = instances(name)
    spec = _spec(type(gen))
    prompts, seeds = _plan(spec, 1)
    with pytest.raises(EvalkitError, match="spec"):
        gen.generate(prompts, seeds, (spec.frames, spec.height, spec.width))
    with pytest.raises(EvalkitError, match="same length"):
        gen.generate(prompts, seeds + seeds, spec)
    bad = _bad_spec(type(gen))
    if bad is None:
        return
    _bind(gen, spec)  # bound to the good spec: a dataset-backed generator must notice the mismatch
    with pytest.raises(EvalkitError) as info:
        gen.generate(prompts, seeds, bad)
    assert str(bad.height) in str(info.value) or str(bad) in str(info.value), str(info.value)
