"""Warm-up + cosine schedule against torch's SequentialLR, and the EMA against the formula."""

import math

import pytest
import torch

from evalkit.generators.schedules import EMA, WarmupCosine, ema_beta, half_life_steps_to_samples


def test_matches_torch_sequential_lr():
    base, warm, total, final = 0.1, 10, 50, 0.05
    sched = WarmupCosine(base, total, warm, final_lr_ratio=final, warmup_start_factor=1e-3)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    ref = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-3, end_factor=1.0, total_iters=warm),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=base * final),
    ], milestones=[warm])
    for step in range(total + 1):
        assert sched(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), step
        opt.step()
        ref.step()


def test_endpoints_and_clamping_past_the_end():
    s = WarmupCosine(2.0, total_steps=100, warmup_steps=10, final_lr_ratio=0.1)
    assert s(0) == 0.0
    assert s(5) == pytest.approx(1.0)
    assert s(10) == pytest.approx(2.0)
    assert s(55) == pytest.approx(0.2 + 1.8 * 0.5)
    assert s(100) == pytest.approx(0.2)
    assert s(101) == s(100) == s(10**6)  # torch's CosineAnnealingLR would climb back here
    assert all(s(t) >= s(t + 1) for t in range(10, 200))
    assert WarmupCosine(1.0, 5)(0) == 1.0  # no warm-up


def test_lambda_lr_form_agrees():
    s = WarmupCosine(0.5, 20, 4)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = s.lambda_lr(opt)
    for t in range(25):
        assert opt.param_groups[0]["lr"] == pytest.approx(s(t))
        opt.step()
        sched.step()


def test_invalid_schedules():
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(1.0, 10, 11)
    with pytest.raises(ValueError, match="final_lr_ratio"):
        WarmupCosine(1.0, 10, 0, final_lr_ratio=2)


def test_ema_beta_half_life():
    # Snap Video: half-life 6,000 steps -> 0.999884 per step, whatever the batch size
    for batch in (1, 64, 4096):
        assert ema_beta(half_life_steps_to_samples(6000, batch), batch) == pytest.approx(0.5 ** (1 / 6000))
    assert ema_beta(6000 * 4, 4) == pytest.approx(0.999884, abs=1e-6)
    # after one half-life of samples the old weights weigh one half
    assert ema_beta(1000, 10) ** 100 == pytest.approx(0.5)
    # ramp-up shortens the half-life early on (EDM: ratio 0.05)
    assert ema_beta(1000, 10, samples_seen=100, rampup_ratio=0.05) == pytest.approx(0.5 ** (10 / 5))
    assert ema_beta(0, 10) == 0.0


def test_ema_follows_the_formula_and_copies_first():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(model, half_life_samples=40, batch_size=8)
    beta = 0.5 ** (8 / 40)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for it in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model(torch.randn(5, 3))  # moves the BatchNorm running statistics
        ema.update(model)
        for k, v in model.state_dict().items():
            if not v.is_floating_point():
                expected[k] = v.clone()  # integer buffers are copied
            elif it == 0:
                expected[k] = v.clone()  # the first update copies
            else:
                expected[k] = beta * expected[k] + (1 - beta) * v
    got = ema.module.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=1e-6, atol=1e-6)
    assert got["1.num_batches_tracked"].item() == 4
    assert not math.isclose(got["0.weight"].sum().item(), model[0].weight.sum().item())
