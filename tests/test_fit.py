"""FIT network: token/group bookkeeping (odd sizes), shapes, locality, self-conditioning, Table 8 sizes."""

import numpy as np
import pytest
import torch

from evalkit.errors import InputError
from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.fit import (
    FIT,
    FITConfig,
    PatchEmbedding,
    check_layout,
    count_parameters,
    from_groups,
    patchify,
    to_groups,
    unpatchify,
    widen_patch_embeddings,
)
from evalkit.generators.model_configs import PAPER_PARAMETERS, model_config


def small(**kw):
    base = dict(frames=3, height=12, width=20, patch_size=[1, 4, 4], group_size=[3, 3, 1], patch_width=16,
                num_latents=10, latent_width=32, num_blocks=1, global_layers=1, patch_head_dim=8,
                latent_head_dim=16, cond_width=24, text_dim=6, dropout=0.0)
    base.update(kw)
    return FITConfig(**base)


def cond_for(b, cfg, length=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return make_conditioning(torch.randn(b, length, cfg.text_dim, generator=gen),
                             torch.ones(b, length, dtype=torch.bool), fps=8.0, resolution=(cfg.height, cfg.width))


def test_patchify_and_groups_round_trip_for_odd_sizes():
    x = torch.randn(2, 3, 3, 12, 20)
    tokens = patchify(x, (1, 4, 4))
    assert tokens.shape == (2, 3, 3, 5, 48)
    torch.testing.assert_close(tokens[1, 2, 1, 3], x[1, :, 2, 4:8, 12:16].reshape(-1))
    assert torch.equal(unpatchify(tokens, (1, 4, 4), 3), x)
    for group in ([3, 3, 1], [3, 1, 5], [1, 3, 5], [3, 1, 1]):
        g = to_groups(tokens, group)
        n_groups = (3 // group[0]) * (3 // group[1]) * (5 // group[2])
        assert g.shape == (2 * n_groups, group[0] * group[1] * group[2], 48)
        assert torch.equal(from_groups(g, (3, 3, 5), group), tokens)


def test_group_contents_follow_the_spatial_windows():
    # tokens carry their own (t, h, w) coordinates
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(3), torch.arange(5), indexing="ij")
    coords = torch.stack([t, h, w], -1)[None].float()  # (1, 3, 3, 5, 3)
    groups = to_groups(coords, (3, 3, 1))  # one group per patch column, spanning all frames
    assert groups.shape == (5, 9, 3)
    for g in range(5):
        assert bool((groups[g, :, 2] == g).all())
        assert sorted(set(groups[g, :, 0].tolist())) == [0, 1, 2]  # every frame present
    groups = to_groups(coords, (3, 1, 5))  # one group per patch row
    for g in range(3):
        assert bool((groups[g, :, 1] == g).all())


def test_clear_errors_when_patches_or_groups_do_not_divide():
    with pytest.raises(ValueError, match="height 13 is not divisible by the patch size 4"):
        small(height=13)
    with pytest.raises(ValueError, match="5 patches along width are not divisible by the group size 2"):
        small(group_size=[3, 3, 2])
    with pytest.raises(ValueError, match="num_latents=7 cannot be split evenly over 5 groups"):
        small(num_latents=7)
    with pytest.raises(ValueError, match="divisible by patch_head_dim"):
        small(patch_head_dim=7)
    with pytest.raises(InputError, match="frames"):
        check_layout((5, 12, 20), [2, 4, 4], [1, 1, 1], 1, where="x")
    net = FIT(small())
    with pytest.raises(InputError, match="width 18 is not divisible by the patch size 4"):
        net(torch.randn(1, 3, 3, 12, 18), torch.zeros(1), cond_for(1, net.config))
    with pytest.raises(InputError, match="as configured"):
        net(torch.randn(1, 3, 3, 12, 40), torch.zeros(1), cond_for(1, net.config))
    with pytest.raises(InputError, match="text_dim=6"):
        c = cond_for(1, net.config)
        net(torch.randn(1, 3, 3, 12, 20), torch.zeros(1), c.replace(text=torch.randn(1, 4, 5)))


def test_forward_shapes_odd_sizes():
    cfg = small()
    net = FIT(cfg)
    assert cfg.num_groups == 5 and cfg.latents_per_group == 2 and cfg.num_patches == 45
    out, latents = net(torch.randn(2, 3, 3, 12, 20), torch.zeros(2), cond_for(2, cfg))
    assert out.shape == (2, 3, 3, 12, 20)
    assert latents.shape == (2, 10, 32)
    assert torch.isfinite(out).all()


def test_groups_only_exchange_information_through_global_layers():
    """With no global layers, a group's patches are written from that group's latents only."""
    cfg = small(global_layers=0, num_blocks=1)
    net = FIT(cfg).eval()
    x = torch.randn(1, 3, 3, 12, 20)
    c = cond_for(1, cfg)
    base, _ = net(x, torch.zeros(1), c)
    x2 = x.clone()
    x2[:, :, 1, 5, 9] += 1.0  # patch column 2 -> group 2
    out, _ = net(x2, torch.zeros(1), c)
    changed = (out - base).abs().amax(dim=(0, 1, 2, 3)).reshape(5, 4).amax(1) > 1e-6
    assert changed.tolist() == [False, False, True, False, False]
    net = FIT(small(global_layers=1)).eval()
    base, _ = net(x, torch.zeros(1), c)
    out, _ = net(x2, torch.zeros(1), c)
    changed = (out - base).abs().amax(dim=(0, 1, 2, 3)).reshape(5, 4).amax(1) > 1e-6
    assert all(changed.tolist())


def test_self_conditioning_acts_only_through_carried_latents():
    cfg = small()
    torch.manual_seed(0)
    net = FIT(cfg).eval()
    x, c = torch.randn(2, 3, 3, 12, 20), cond_for(2, cfg)
    c_noise = torch.tensor([0.1, -0.3])
    ref, latents = net(x, c_noise, c)
    # at initialisation LN0 is zero: the carried latents have no effect yet
    same, _ = net(x, c_noise, c.replace(carry=torch.randn_like(latents)))
    torch.testing.assert_close(same, ref)
    with torch.no_grad():
        net.self_cond_norm.weight.fill_(1.0)
    ref, latents = net(x, c_noise, c)
    zeros, _ = net(x, c_noise, c.replace(carry=torch.zeros_like(latents)))
    assert torch.equal(ref, zeros)  # no carry == zero latents (the first sampling step)
    carried, _ = net(x, c_noise, c.replace(carry=latents))
    assert not torch.allclose(carried, ref, atol=1e-5)
    again, _ = net(x, c_noise, c.replace(carry=latents))
    assert torch.equal(carried, again)
    after, _ = net(x, c_noise, c)  # no hidden state left behind by the previous calls
    assert torch.equal(after, ref)
    with pytest.raises(InputError, match="carried latents"):
        net(x, c_noise, c.replace(carry=latents[:, :5]))


def test_masked_text_tokens_do_not_matter_and_unconditional_is_finite():
    cfg = small()
    net = FIT(cfg).eval()
    x = torch.randn(2, 3, 3, 12, 20)
    c = cond_for(2, cfg)
    mask = c.text_mask.clone()
    mask[:, 2:] = False
    c = c.replace(text_mask=mask)
    ref, _ = net(x, torch.zeros(2), c)
    text = c.text.clone()
    text[:, 2:] = 100.0
    out, _ = net(x, torch.zeros(2), c.replace(text=text))
    torch.testing.assert_close(out, ref)
    uncond, _ = net(x, torch.zeros(2), c.without_text())
    assert torch.isfinite(uncond).all() and not torch.allclose(uncond, ref)


def test_dropout_only_in_training():
    net = FIT(small(dropout=0.5))
    x, c = torch.randn(1, 3, 3, 12, 20), cond_for(1, small())
    net.eval()
    assert torch.equal(net(x, torch.zeros(1), c)[0], net(x, torch.zeros(1), c)[0])
    net.train()
    assert not torch.equal(net(x, torch.zeros(1), c)[0], net(x, torch.zeros(1), c)[0])


def test_upsampler_input_channels_and_aug_token():
    cfg = small(lowres_channels=3, aug_level_token=True)
    net = FIT(cfg)
    x, c = torch.randn(1, 3, 3, 12, 20), cond_for(1, cfg)
    with pytest.raises(InputError, match="lowres"):
        net(x, torch.zeros(1), c)
    c = c.replace(lowres=torch.randn(1, 3, 3, 12, 20))
    with pytest.raises(InputError, match="aug_level"):
        net(x, torch.zeros(1), c)
    out, _ = net(x, torch.zeros(1), c.replace(aug_level=torch.tensor([0.1])))
    assert out.shape == x.shape


@pytest.mark.parametrize("name", ["fit-500m", "fit-3.9b", "fit-upsampler-3.9b"])
def test_table8_configs_match_paper_parameter_counts(name):
    cfg = model_config(name)
    with torch.device("meta"):
        net = FIT(cfg.fit)
    n = count_parameters(net)
    assert abs(n / PAPER_PARAMETERS[name] - 1) < 0.05, n
    fit = cfg.fit
    assert fit.num_patches == {"fit-500m": 2560, "fit-3.9b": 2560, "fit-upsampler-3.9b": 147456}[name]
    assert fit.num_groups == {"fit-500m": 8, "fit-3.9b": 8, "fit-upsampler-3.9b": 32}[name]
    assert fit.latents_per_group == {"fit-500m": 64, "fit-3.9b": 96, "fit-upsampler-3.9b": 24}[name]
    assert len(net.blocks) == 6 and all(len(b.layers) == 4 for b in net.blocks)


def test_tiny_configs_are_small():
    for name in ("fit-tiny", "fit-upsampler-tiny"):
        n = count_parameters(FIT(model_config(name).fit))
        assert 1e6 < n < 6e6, (name, n)


def test_positional_embeddings_start_at_the_configured_scale():
    torch.manual_seed(0)
    default = FIT(small())
    torch.manual_seed(0)
    wide = FIT(small(pos_init_std=0.5))
    for net, std in ((default, 0.02), (wide, 0.5)):
        values = torch.cat([net.pos_t.flatten(), net.pos_h.flatten(), net.pos_w.flatten()])
        assert abs(float(values.std()) - std) < 0.15 * std
    assert torch.equal(default.latent_embed, wide.latent_embed)   # only the positional scale changes
    with pytest.raises(ValueError, match="pos_init_std"):
        small(pos_init_std=-0.1)


def test_sincos_positional_init_is_the_mae_table_on_disjoint_channel_thirds():
    cfg = small(patch_width=32, patch_head_dim=8, pos_init="sincos", pos_sincos_amplitude=0.5)
    net = FIT(cfg)
    block = 32 // 3 // 2 * 2                       # 10 channels per axis, the last 2 channels stay zero
    for axis, table in enumerate((net.pos_t, net.pos_h, net.pos_w)):
        positions = np.arange(table.shape[0], dtype=np.float64)
        omega = 1.0 / 10000 ** (np.arange(block // 2) / (block / 2))       # MAE's get_1d_sincos_pos_embed
        expected = 0.5 * np.concatenate([np.sin(np.outer(positions, omega)), np.cos(np.outer(positions, omega))], 1)
        got = table.detach().double().numpy()
        np.testing.assert_allclose(got[:, axis * block:(axis + 1) * block], expected, atol=1e-6)
        assert not got[:, :axis * block].any() and not got[:, (axis + 1) * block:].any()
    # the property attention can use: the similarity of two positions depends only on their offset
    gram = net.pos_w @ net.pos_w.T
    offsets = torch.arange(net.pos_w.shape[0])
    for d in range(1, net.pos_w.shape[0]):
        diag = gram[offsets[:-d], offsets[d:]]
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-5)
    with pytest.raises(ValueError, match="pos_init"):
        small(pos_init="learned")


def test_wider_embedding_kernel_reads_exactly_its_centred_window():
    torch.manual_seed(0)
    embed = PatchEmbedding(3, 8, [1, 4, 4], kernel=[3, 8, 12])
    x = torch.randn(1, 3, 5, 12, 20)
    tokens = embed(x)
    assert tokens.shape == (1, 5, 3, 5, 8)
    # token (t=2, h=1, w=2) covers frames 1..3, rows 4-2..8+2, columns 8-4..12+4, zero outside the clip
    t, h, w = 2, 1, 2
    window = x[0, :, t - 1:t + 2, 4 * h - 2:4 * h + 6, 4 * w - 4:4 * w + 8]
    expected = torch.einsum("octhw,cthw->o", embed.weight.double(), window.double()) + embed.bias.double()
    torch.testing.assert_close(tokens[0, t, h, w].double(), expected, atol=1e-5, rtol=0)
    edge = torch.nn.functional.pad(x, (4, 4, 2, 2, 1, 1))[0, :, 0:3, 0:8, 0:12]        # token (0, 0, 0)
    expected = torch.einsum("octhw,cthw->o", embed.weight.double(), edge.double()) + embed.bias.double()
    torch.testing.assert_close(tokens[0, 0, 0, 0].double(), expected, atol=1e-5, rtol=0)


def test_linear_weights_widened_to_a_kernel_compute_the_same_network():
    torch.manual_seed(0)
    paper, wide = FIT(small()), FIT(small(embed_kernel=[3, 12, 12]))
    assert wide.patch_embed.weight.shape == (16, 3, 3, 12, 12)
    wide.load_state_dict(widen_patch_embeddings(wide, paper.state_dict()))
    x, c = torch.randn(2, 3, 3, 12, 20), cond_for(2, paper.config)
    torch.testing.assert_close(wide(x, torch.full((2,), 0.3), c)[0], paper(x, torch.full((2,), 0.3), c)[0],
                               atol=1e-5, rtol=1e-5)
    # the paper's linear embedding equals a convolution whose kernel is the patch (torch's conv3d)
    as_conv = PatchEmbedding(3, 16, [1, 4, 4], kernel=[1, 4, 4])
    as_conv.load_state_dict({"weight": paper.patch_embed.weight.reshape(as_conv.weight.shape),
                             "bias": paper.patch_embed.bias})
    torch.testing.assert_close(paper.patch_embed(x), as_conv(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kernel", [[1, 2, 4], [1, 5, 4], [2, 4]])
def test_embedding_kernel_must_cover_and_centre_on_the_patch(kernel):
    with pytest.raises(ValueError, match="embed_kernel"):
        small(embed_kernel=kernel)


def test_local_mixing_starts_as_the_network_without_it():
    """A checkpoint trained without the layer loads (new tensors keep their init) and computes the same."""
    torch.manual_seed(0)
    paper, mixed = FIT(small()), FIT(small(local_mixing=[3, 3, 3]))
    missing = mixed.load_state_dict(paper.state_dict(), strict=False).missing_keys
    assert missing and all(".mixing." in key for key in missing)
    x, c = torch.randn(2, 3, 3, 12, 20), cond_for(2, paper.config)
    torch.testing.assert_close(mixed(x, torch.full((2,), 0.3), c)[0], paper(x, torch.full((2,), 0.3), c)[0])


def test_local_mixing_reaches_exactly_the_neighbouring_patches_across_groups():
    """With no global layers, groups only meet through the mixing: the patches a change reaches spread by
    its kernel (here one patch left and right, none in time or height) into other groups, and no further."""
    cfg = small(global_layers=0, num_blocks=1, group_size=[3, 3, 1], local_mixing=[1, 1, 3])
    net = FIT(cfg).eval()
    torch.nn.init.normal_(net.blocks[0].mixing.gain, std=1.0)
    x, c = torch.randn(1, 3, 3, 12, 20), cond_for(1, cfg)
    base, _ = net(x, torch.zeros(1), c)
    x2 = x.clone()
    x2[:, :, 1, 5, 9] += 1.0  # frame 1, patch row 1, patch column 2 (group 2)
    out, _ = net(x2, torch.zeros(1), c)
    changed_patch = (out - base).abs().amax(dim=1)[0].reshape(3, 3, 4, 5, 4).amax(dim=(2, 4)) > 1e-6
    # the group-wise write changes all of group 2 (patch column 2, every frame and row); the mixing after
    # it carries that one column to each side, and columns 0 and 4 stay as they were
    expected = torch.zeros(3, 3, 5, dtype=torch.bool)
    expected[:, :, 1:4] = True
    assert torch.equal(changed_patch, expected)


def test_local_mixing_gain_leaves_zero_under_lamb_where_a_zero_matrix_would_not():
    """The layer's zero start sits in a vector, which LAMB steps like Adam (|step| = lr on the first
    step); a zero-initialised matrix in its place would have its steps scaled to its own tiny norm."""
    from evalkit.generators.lamb import Lamb, param_groups_no_decay

    def first_two_steps(tensor_name):
        torch.manual_seed(0)
        net = FIT(small(local_mixing=[3, 3, 3]))
        mixing = net.blocks[0].mixing
        if tensor_name == "proj.weight":              # the alternative: zero matrix, unit gain
            torch.nn.init.zeros_(mixing.proj.weight)
            torch.nn.init.ones_(mixing.gain)
        param = mixing.get_parameter(tensor_name)
        opt = Lamb(param_groups_no_decay(net, 0.01), lr=1e-3)
        x, c = torch.randn(2, 3, 3, 12, 20), cond_for(2, net.config)
        sizes = []
        for _ in range(2):
            before = param.detach().clone()
            opt.zero_grad()
            (net(x, torch.full((2,), 0.3), c)[0].square().sum() * 1e3).backward()   # gradients far above eps
            opt.step()
            sizes.append((param.detach() - before).abs().median().item())
        return sizes

    gain_steps = first_two_steps("gain")
    assert gain_steps[0] == pytest.approx(1e-3, rel=1e-3) and gain_steps[1] > 0.5e-3
    matrix_steps = first_two_steps("proj.weight")
    assert matrix_steps[0] == pytest.approx(1e-3, rel=1e-2)   # trust ratio 1 while the norm is zero
    assert matrix_steps[1] < 1e-5                              # then steps of lr x its own norm


@pytest.mark.parametrize("kernel", [[3, 3], [3, 2, 3], [0, 3, 3]])
def test_local_mixing_kernel_must_be_three_odd_sizes(kernel):
    with pytest.raises(ValueError, match="local_mixing"):
        small(local_mixing=kernel)
