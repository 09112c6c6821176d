"""KID against torchmetrics' KernelInceptionDistance on the same features and the same subsets."""

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance as TorchmetricsKID

from evalkit.errors import InputError
from evalkit.metrics.kid import KernelInceptionDistance


class _SmallKid(KernelInceptionDistance):
    name, variant, detector = "kid", "test", "none"
    subsets, subset_size, seed = 7, 20, 3


def test_matches_torchmetrics_with_the_same_generator_seed():
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.normal(size=(50, 16)))
    fake = torch.from_numpy(rng.normal(0.3, 1.2, size=(43, 16)))
    ours = _SmallKid()
    ours.update(real[:30], real=True)
    ours.update(real[30:], real=True)
    ours.update(fake, real=False)
    reference = TorchmetricsKID(feature=torch.nn.Identity(), subsets=7, subset_size=20)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    torch.manual_seed(3)  # torchmetrics draws subsets from the global generator
    mean, std = reference.compute()
    got = ours.compute()
    assert got.value == pytest.approx(float(mean), rel=1e-9)
    assert got.std == pytest.approx(float(std), rel=1e-7)
    assert got.value > 0


def test_small_sets_reduce_subset_size_and_bad_inputs():
    metric = _SmallKid()
    metric.update(np.random.default_rng(1).normal(size=(8, 4)), real=True)
    metric.update(np.random.default_rng(2).normal(size=(9, 4)), real=False)
    value = metric.compute()
    assert value.details["subset_size"] == 8 and "reduced" in value.details["warnings"][0]
    with pytest.raises(InputError, match="4-d"):
        metric.update(np.zeros((3, 5)), real=False)
    metric.reset()
    with pytest.raises(InputError, match="at least 2"):
        metric.compute()
