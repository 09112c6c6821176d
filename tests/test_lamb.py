"""Our LAMB against timm's (NvLAMB semantics) and against hand-written special cases."""

import copy

import pytest
import torch
from timm.optim import Lamb as TimmLamb

from evalkit.generators.lamb import Lamb, param_groups_no_decay, trust_ratio, zero_under_trust_ratio


def _mlp(seed: int = 0, dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).to(dtype)


def _run(model, opt, steps: int = 6, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
        y = torch.randn(16, 3, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean() * 50  # large gradients so clipping is active
        loss.backward()
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("trust_clip", [False, True])
@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
@pytest.mark.parametrize("always_adapt", [False, True])
def test_matches_timm(weight_decay, trust_clip, max_grad_norm, always_adapt):
    a, b = _mlp(), _mlp()
    ours = Lamb(a.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=weight_decay, trust_clip=trust_clip,
                max_grad_norm=max_grad_norm, always_adapt=always_adapt)
    ref = TimmLamb(b.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=weight_decay, trust_clip=trust_clip,
                   max_grad_norm=max_grad_norm, always_adapt=always_adapt, foreach=False)
    _run(a, ours)
    _run(b, ref)
    moved = max((p - q).abs().max().item() for p, q in zip(a.parameters(), _mlp().parameters()))
    assert moved > 1e-3  # the comparison is not between two untouched models
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)


def test_matches_timm_param_groups_and_foreach_float32():
    a, b = _mlp(dtype=torch.float32), _mlp(dtype=torch.float32)
    ours = Lamb(param_groups_no_decay(a, 0.01), lr=5e-3, betas=(0.9, 0.99))
    ref = TimmLamb(param_groups_no_decay(b, 0.01), lr=5e-3, betas=(0.9, 0.99), max_grad_norm=None)  # foreach path
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        x, y = torch.randn(8, 5, generator=gen), torch.randn(8, 3, generator=gen)
        for m, o in ((a, ours), (b, ref)):
            o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_adam_mode_equals_adam_with_l2():
    torch.manual_seed(0)
    w0 = torch.randn(4, 3, dtype=torch.float64)
    p = torch.nn.Parameter(w0.clone())
    opt = Lamb([p], lr=0.1, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.05, adam=True)
    m = torch.zeros_like(w0)
    v = torch.zeros_like(w0)
    w = w0.clone()
    for t in range(1, 4):
        g = torch.full_like(w0, 0.3 * t) + w0
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        u = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-6) + 0.05 * w
        w = w - 0.1 * u
        torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-12)


def test_trust_ratio_is_one_for_zero_weights_and_clipped():
    zero = torch.zeros(3)
    assert trust_ratio(zero, torch.ones(3)).item() == 1.0
    assert trust_ratio(torch.ones(3), zero).item() == 1.0
    w, u = torch.full((4,), 3.0), torch.full((4,), 1.0)
    assert trust_ratio(w, u).item() == pytest.approx(3.0)
    assert trust_ratio(w, u, clip=True).item() == 1.0
    assert trust_ratio(w * 10, u, weight_norm_clamp=10.0).item() == pytest.approx(10.0 / 2.0)
    # zero weights: the first LAMB step is a plain Adam step of size lr
    p = torch.nn.Parameter(torch.zeros(5))
    p.grad = torch.ones(5)
    Lamb([p], lr=0.5, weight_decay=0.01).step()
    torch.testing.assert_close(p.detach(), torch.full((5,), -0.5), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_continues_identically():
    a = _mlp()
    opt = Lamb(a.parameters(), lr=1e-2)
    _run(a, opt, steps=3)
    b = copy.deepcopy(a)
    opt_b = Lamb(b.parameters(), lr=1e-2)
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))
    _run(a, opt, steps=3, seed=9)
    _run(b, opt_b, steps=3, seed=9)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_rejects_bad_hyper_parameters():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="lr"):
        Lamb(p, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        Lamb(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="max_grad_norm"):
        Lamb(p, max_grad_norm=0)


def test_no_decay_groups():
    m = _mlp()
    groups = param_groups_no_decay(m, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim < 2 for p in groups[1]["params"])


def _small_fit() -> torch.nn.Module:
    from evalkit.generators.fit import FIT, FITConfig

    torch.manual_seed(0)
    return FIT(FITConfig(frames=2, height=8, width=8, group_size=[2, 1, 1], patch_width=16, num_latents=8,
                         latent_width=16, num_blocks=1, global_layers=1, patch_head_dim=8, latent_head_dim=8,
                         cond_width=16, text_dim=8))


def test_no_decay_groups_match_timm_and_honour_no_weight_decay():
    from timm.optim import param_groups_weight_decay

    from evalkit.generators.lamb import no_decay_names

    outer = torch.nn.ModuleDict({"net": _small_fit()})
    listed = no_decay_names(outer)
    assert listed == {"net.pos_t", "net.pos_h", "net.pos_w", "net.latent_embed"}
    ours = {g["weight_decay"]: {id(p) for p in g["params"]}
            for g in param_groups_no_decay(outer, 0.01, honour_no_weight_decay=True)}
    ref = {g["weight_decay"]: {id(p) for p in g["params"]}
           for g in param_groups_weight_decay(outer, 0.01, no_weight_decay_list=sorted(listed))}
    assert ours == ref
    embeddings = {id(p) for n, p in outer.named_parameters() if n in listed}
    assert embeddings <= ours[0.0]
    default = {g["weight_decay"]: {id(p) for p in g["params"]} for g in param_groups_no_decay(outer, 0.01)}
    assert embeddings <= default[0.01]


def test_trust_ratio_ties_a_small_embedding_to_its_norm_and_no_decay_frees_it():
    """A 0.02-scale embedding with a steady gradient: LAMB moves it by lr x ||w||, Adam by about lr per entry."""
    lr = 1e-2
    moved = {}
    for wd in (0.01, 0.0):
        torch.manual_seed(0)
        emb = torch.nn.Parameter(0.02 * torch.randn(16, 32))
        start = emb.detach().clone()
        opt = Lamb([{"params": [emb], "weight_decay": wd}], lr=lr)
        for _ in range(10):
            opt.zero_grad()
            (emb * torch.ones_like(emb)).sum().backward()   # steady gradient: every entry wants to fall
            opt.step()
        moved[wd] = (emb.detach() - start).norm() / start.norm()
    assert moved[0.01] < 10 * lr * 1.05                      # at most lr of its own norm per step
    assert moved[0.0] > 10 * moved[0.01]                     # Adam: ~lr per entry, far more than 2% of 0.02


def test_a_zero_matrix_stays_near_zero_under_lamb_and_timm_agrees_and_it_is_named():
    """Trust ratio 1 at norm zero, then steps of lr x the tensor's own norm: a zero-initialised output
    layer grows by at most (1 + lr) per step. ``zero_under_trust_ratio`` names exactly such tensors."""
    lr = 1e-2
    norms = {}
    for name, cls in (("ours", Lamb), ("timm", TimmLamb)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
        for tensor in (model[0].bias, model[2].weight, model[2].bias):
            torch.nn.init.zeros_(tensor)
        opt = cls(param_groups_no_decay(model, 0.01), lr=lr)
        if name == "ours":
            assert zero_under_trust_ratio(opt, model) == ["2.weight"]      # zero biases: plain Adam, not named
            assert set(zero_under_trust_ratio(Lamb(model.parameters(), lr=lr, always_adapt=True, weight_decay=0),
                                              model)) == {"0.bias", "2.weight", "2.bias"}
        x = torch.randn(32, 8)
        for _ in range(20):
            opt.zero_grad()
            (model(x) - 1.0).square().mean().backward()
            opt.step()
        norms[name] = model[2].weight.detach().norm().item()
    first_step = lr * 8     # every entry moves by lr on the first step: ||.|| = lr * sqrt(64)
    for norm in norms.values():
        assert first_step * 0.99 < norm < first_step * (1 + lr) ** 19 * 1.01
    assert zero_under_trust_ratio(Lamb(param_groups_no_decay(model, 0.01), lr=lr), model) == []
