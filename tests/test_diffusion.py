"""sigma_in EDM (Snap Video Table 1): reduction to EDM, unit variances, exact reconstruction, loss forms."""

import math

import pytest
import torch

from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.diffusion import DiffusionConfig, SigmaInEDM, training_loss

SIGMAS = torch.tensor([0.002, 0.03, 0.2, 1.0, 3.0, 20.0, 80.0], dtype=torch.float64)


def _cond(b, dim=8, length=5):
    return make_conditioning(torch.randn(b, length, dim), torch.ones(b, length, dtype=torch.bool),
                             fps=24.0, resolution=(8, 8))


def test_sigma_in_one_reduces_to_edm_up_to_target_sign():
    sd = 0.5
    edm = SigmaInEDM(DiffusionConfig(sigma_data=sd))
    s = SIGMAS
    # EDM (Karras et al. 2022, EDMPrecond / EDMLoss), written out independently
    c_in = 1 / torch.sqrt(s ** 2 + sd ** 2)
    c_skip = sd ** 2 / (s ** 2 + sd ** 2)
    c_out = s * sd / torch.sqrt(s ** 2 + sd ** 2)
    lam = (s ** 2 + sd ** 2) / (s * sd) ** 2
    torch.testing.assert_close(edm.c_in(s, 1.0), c_in)
    torch.testing.assert_close(edm.c_skip(s, 1.0), c_skip)
    torch.testing.assert_close(edm.c_out(s, 1.0), -c_out)  # F and c_out flip sign together
    torch.testing.assert_close(edm.loss_weight(s), lam)
    torch.testing.assert_close(edm.target_weight(s, 1.0), torch.ones_like(s))
    torch.testing.assert_close(edm.c_noise(s), torch.log(s) / 4)
    x, eps = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    edm_target = s[:, None] * x - sd ** 2 * eps  # [SV eq. 3] F_tgt of plain EDM
    torch.testing.assert_close(edm.target(x, s, eps), -edm_target)


def test_sigma_in_default_is_s_sqrt_t_from_clip_shape():
    edm = SigmaInEDM()
    assert edm.sigma_in_for(16, 64) == pytest.approx(4.0)      # stage 1, 64x36
    assert edm.sigma_in_for(16, 512) == pytest.approx(32.0)    # stage 2, 512x288
    assert edm.sigma_in_for(16, 32) == pytest.approx(2.0)
    assert edm.sigma_in_of(torch.zeros(2, 3, 9, 40, 128)) == pytest.approx(6.0)
    assert SigmaInEDM(DiffusionConfig(sigma_in=2.5)).sigma_in_for(16, 512) == 2.5
    assert SigmaInEDM(DiffusionConfig(spatial_scale=3.0)).sigma_in_for(4, 64) == pytest.approx(6.0)


@pytest.mark.parametrize("si", [1.0, 4.0, 32.0])
def test_input_and_normalised_target_have_unit_variance(si):
    """Measured on data with standard deviation sigma_data = 1."""
    edm = SigmaInEDM()
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.sqrt(3) - math.sqrt(3)  # uniform, var 1
    assert x.var().item() == pytest.approx(1.0, rel=0.01)
    for sigma in [0.01, 0.3, 1.0, 5.0, 60.0]:
        eps = torch.randn(n, generator=gen, dtype=torch.float64)
        x_sigma = x / si + sigma * eps
        net_in = edm.c_in(sigma, si) * x_sigma
        target = edm.c_nrm(sigma) * edm.target(x, torch.tensor(sigma), eps)
        assert net_in.var().item() == pytest.approx(1.0, rel=0.02), sigma
        assert target.var().item() == pytest.approx(1.0, rel=0.02), sigma


@pytest.mark.parametrize("sd,si", [(1.0, 4.0), (0.5, 1.0), (0.5, 4.0), (1.0, 32.0), (2.0, 0.5)])
def test_perfect_network_output_reconstructs_x_exactly(sd, si):
    edm = SigmaInEDM(DiffusionConfig(sigma_data=sd, sigma_in=si))
    b = len(SIGMAS)
    x = torch.randn(b, 3, 2, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x)
    sigma = SIGMAS
    x_sigma = edm.add_noise(x, sigma, eps, si)
    perfect = edm.c_nrm(sigma)[:, None, None, None, None] * edm.target(x, sigma, eps)

    def net(x_in, c_noise, cond):
        # the network sees c_in * x_sigma and ln(sigma)/4
        torch.testing.assert_close(c_noise, torch.log(sigma) / 4)
        torch.testing.assert_close(x_in, edm.c_in(sigma, si)[:, None, None, None, None] * x_sigma)
        return perfect

    d, carry = edm.denoise(net, x_sigma, sigma, _cond(b), si)
    assert carry is None
    torch.testing.assert_close(d, x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sd,si", [(1.0, 4.0), (0.5, 1.0), (1.0, 32.0)])
def test_two_loss_forms_agree(sd, si):
    edm = SigmaInEDM(DiffusionConfig(sigma_data=sd))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(len(SIGMAS), 3, 2, 4, 4, generator=gen, dtype=torch.float64)
    eps = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    f = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    x_sigma = edm.add_noise(x, SIGMAS, eps, si)
    a = edm.loss_from_output(f, x, x_sigma, SIGMAS, eps, si, form="target")
    b = edm.loss_from_output(f, x, x_sigma, SIGMAS, eps, si, form="denoiser")
    torch.testing.assert_close(a, b, rtol=1e-9, atol=0)
    # w equals lambda * c_out^2 (Table 1)
    torch.testing.assert_close(edm.target_weight(SIGMAS, si), edm.loss_weight(SIGMAS) * edm.c_out(SIGMAS, si) ** 2)


class _Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 3, 1)

    def forward(self, x_in, c_noise, cond):
        return self.conv(x_in) * (1 + c_noise[:, None, None, None, None])


def test_training_loss_forms_agree_and_are_deterministic():
    torch.manual_seed(0)
    net = _Conv().double()
    x = torch.rand(6, 3, 4, 8, 8, dtype=torch.float64) * 2 - 1
    cond = _cond(6)
    cond = cond.replace(text=cond.text.double())
    values = {}
    for form in ("target", "denoiser"):
        edm = SigmaInEDM(DiffusionConfig(loss_form=form))
        values[form] = training_loss(edm, net, x, cond, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(values["target"], values["denoiser"], rtol=1e-9, atol=0)
    again = training_loss(SigmaInEDM(), net, x, cond, generator=torch.Generator().manual_seed(5))
    assert again.item() == values["target"].item()


def test_log_normal_sigma_sampling():
    edm = SigmaInEDM(DiffusionConfig(P_mean=-1.2, P_std=1.2))
    s = edm.sample_sigma(50_000, torch.Generator().manual_seed(0))
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.03)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.03)


class _Recorder(torch.nn.Module):
    """Returns F = 0 and a carry; records what each call received."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x_in, c_noise, cond):
        self.calls.append(cond)
        carry = torch.ones(x_in.shape[0], 2, 3)
        return torch.zeros_like(x_in), carry


def test_self_conditioning_two_passes_and_label_dropout():
    net = _Recorder()
    b = 2000
    x = torch.zeros(b, 3, 1, 4, 4)
    training_loss(SigmaInEDM(), net, x, _cond(b), generator=torch.Generator().manual_seed(0),
                  text_dropout=0.1, self_cond_rate=0.9)
    assert len(net.calls) == 2
    first, second = net.calls
    assert first.carry is None
    kept = second.carry.flatten(1).any(1).float().mean().item()
    assert kept == pytest.approx(0.9, abs=0.03)
    dropped = (~second.text_mask.any(1)).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.03)
    assert torch.equal(first.text_mask, second.text_mask)  # both passes see the same dropped text
    net.calls.clear()
    training_loss(SigmaInEDM(), net, x[:4], _cond(4), generator=torch.Generator().manual_seed(0),
                  text_dropout=0.0, self_cond_rate=0.0)
    assert len(net.calls) == 1 and net.calls[0].carry is None and bool(net.calls[0].text_mask.all())


class _RecordingEDM(SigmaInEDM):
    """Keeps the per-sample losses of the last batch."""

    def loss_from_output(self, *args, **kwargs):
        self.per_sample = super().loss_from_output(*args, **kwargs)
        return self.per_sample


def test_images_get_their_own_sigma_in_only_when_configured():
    torch.manual_seed(0)
    net = _Conv().double()
    x = torch.rand(6, 3, 4, 8, 8, dtype=torch.float64) * 2 - 1
    fps = torch.tensor([24.0, math.inf, 24.0, math.inf, math.inf, 12.0], dtype=torch.float64)
    base = _cond(6)
    cond = make_conditioning(base.text.double(), base.text_mask, fps=fps, resolution=(8, 8))

    def per_sample(config):
        edm = _RecordingEDM(config)
        training_loss(edm, net, x, cond, generator=torch.Generator().manual_seed(5))
        return edm.per_sample

    matched = per_sample(DiffusionConfig(sigma_in=4.0))
    assert torch.equal(per_sample(DiffusionConfig(sigma_in=4.0, image_sigma_in=4.0)), matched)
    split = per_sample(DiffusionConfig(sigma_in=4.0, image_sigma_in=1.0))
    all_at_one = per_sample(DiffusionConfig(sigma_in=1.0))
    images = torch.isinf(fps)
    # images are trained exactly as with sigma_in 1, videos exactly as with sigma_in 4
    torch.testing.assert_close(split[images], all_at_one[images], rtol=1e-12, atol=0)
    torch.testing.assert_close(split[~images], matched[~images], rtol=1e-12, atol=0)
    assert not torch.allclose(split[images], matched[images])
    column = SigmaInEDM(DiffusionConfig(sigma_in=4.0, image_sigma_in=1.0)).training_sigma_in(x, cond)
    assert column.shape == (6, 1, 1, 1, 1) and column.flatten().tolist() == [4.0, 1.0, 4.0, 1.0, 1.0, 4.0]


def test_config_validation():
    from evalkit.config import from_dict
    from evalkit.errors import ConfigError

    with pytest.raises(ConfigError, match="sigma_data"):
        from_dict(DiffusionConfig, {"sigma_data": 0.0})
    with pytest.raises(ConfigError, match="image_sigma_in"):
        from_dict(DiffusionConfig, {"image_sigma_in": -1.0})
    with pytest.raises(ConfigError, match="loss_form"):
        from_dict(DiffusionConfig, {"loss_form": "v"})
