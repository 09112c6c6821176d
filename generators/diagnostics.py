"""Denoiser error by noise level: how well a trained stage recovers held-out clips at each sigma.

A diffusion model samples well only if its denoiser D(x; sigma) is good at every level the sampler
visits (sigma_max 80 down to 0.002). The training loss averages over the training-sigma distribution
and hides where the network fails; this table does not. Three reference predictions that ignore the
noisy input are printed as bars, from weakest to strongest:

- the mean clip of the batch (knows nothing about the clip);
- each clip filled with its own median colour (knows the background, nothing about the objects);
- each clip's temporal mean (knows where the objects are on average, nothing about their motion).

At high sigma a denoiser can only use the caption, so it should approach the background bar; a
denoiser that stays near that bar at sigma 1 to 3 has learned colours but not where things are.

``--draws N`` adds the variance of D over N noise draws of the same clips: the part of its output that
follows the noisy input. A network that stays near the background bar with this part near zero ignores
its input at that sigma and paints a caption-only guess.

An upsampler stage is scored the same way, conditioned on each clip's area-downsampled version at
the stage's low resolution (augmentation level ``--aug-level``, default 0), with one more bar: that
low-resolution clip resized back up (bilinear), which is what the stage must beat to add anything. A
residual upsampler (``upsampler.residual``) is scored on the clip it returns: the resized input plus D.
``--sample STEPS`` also samples the stage from those low-resolution clips and prints the PSNR of its
output against the real clips, next to that of the resized input.

``--posterior-pool K`` adds what a denoiser that knows the caption can reach at each sigma: the exact
posterior mean of the clip given its noisy version, under the distribution of K clips rendered from the
clip's own attributes (shape, colour, motion, speed, background) with fresh nuisance seeds (position,
radius, jitter). It is an estimator like any other, so the best caption-conditioned denoiser does at
least as well on average; with a finite pool it is weakest at low sigma, where it can only return the
nearest pool clip.

    python -m evalkit.generators.diagnostics fit-tiny-shapes            # shipped name or weights file
    python -m evalkit.generators.diagnostics runs/train/unet/export.safetensors --clips 32
    python -m evalkit.generators.diagnostics fit-tiny-shapes --draws 4 --posterior-pool 4096
    python -m evalkit.generators.diagnostics fit-upsampler-tiny-shapes --clips 8 --sample 4 8 --sigma-max 0.2
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

import torch

from evalkit.datasets.shapes.dataset import ShapesTrainingData
from evalkit.datasets.shapes.render import render_batch
from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.snapvideo import crop_clips, pad_clips, resize_clips, videos_to_clips
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec

DEFAULT_SIGMAS = (0.05, 0.2, 0.5, 1.0, 3.0, 10.0, 40.0)


@torch.no_grad()
def denoiser_error(diffusion, net, clips: torch.Tensor, cond, sigmas: tuple[float, ...], *, sigma_in: float,
                   crop: tuple[int, int] | None = None, seed: int = 0) -> dict[float, float]:
    """Mean squared error of D(x/sigma_in + sigma * eps) against the clean ``clips`` (B, C, T, H, W) per sigma.

    ``crop`` (height, width) scores only the centre of padded clips; the noise is seeded per call.
    """
    g = torch.Generator().manual_seed(seed)
    ref = crop_clips(clips, *crop) if crop is not None else clips
    out = {}
    for s in sigmas:
        d = _denoise_noisy(diffusion, net, clips, cond, float(s), torch.randn(clips.shape, generator=g),
                           sigma_in=sigma_in, crop=crop)
        out[float(s)] = float(((d - ref) ** 2).mean())
    return out


def _denoise_noisy(diffusion, net, clips: torch.Tensor, cond, sigma: float, eps: torch.Tensor, *,
                   sigma_in: float, crop: tuple[int, int] | None) -> torch.Tensor:
    """D(clips/sigma_in + sigma * eps), cropped to ``crop`` (height, width) when given."""
    level = torch.full((clips.shape[0],), sigma)
    d, _ = diffusion.denoise(net, diffusion.add_noise(clips, level, eps, sigma_in), level, cond, sigma_in)
    return crop_clips(d, *crop) if crop is not None else d

def _flat_pixels(videos: torch.Tensor) -> torch.Tensor:
    """uint8 videos (B, ...) -> float64 (B, N) in [-1, 1], in double so the pool weights lose nothing."""
    return videos.reshape(videos.shape[0], -1).double() / 127.5 - 1


@torch.no_grad()
def caption_posterior_errors(data: ShapesTrainingData, indices: list[int], sigmas: tuple[float, ...], *,
                             sigma_in: float, pool: int, seed: int = 0, chunk: int = 256) -> dict[float, float]:
    """MSE per sigma of the posterior mean of each clip given x/sigma_in + sigma*eps and its attributes.

    The prior is the empirical distribution of ``pool`` clips rendered from the clip's own attributes with
    fresh render seeds; weights exp(-|y - p_i/sigma_in|^2 / (2 sigma^2)) are accumulated over pool chunks
    with a running maximum (float64), so memory stays at one chunk. Clips in [-1, 1], unpadded.
    """
    if pool < 1:
        raise ValueError(f"pool must be >= 1, got {pool}")
    noise = torch.Generator().manual_seed(seed)
    errors: dict[float, list[float]] = {float(s): [] for s in sigmas}
    for index in indices:
        attrs, render_seed, fps, _ = data.draw(index)
        spec = dataclasses.replace(data.spec, fps=fps)
        x = _flat_pixels(render_batch([attrs], [render_seed], spec))[0]
        noisy = {s: x / sigma_in + s * torch.randn(x.shape, generator=noise, dtype=torch.float64) for s in errors}
        running = {s: [torch.tensor(-math.inf, dtype=torch.float64), torch.zeros_like(x), 0.0] for s in errors}
        seeds = numpy_rng(sample_seed(seed, index, "diagnostics/posterior-pool")).integers(0, 2**62, pool)
        for start in range(0, pool, chunk):
            chunk_seeds = [int(v) for v in seeds[start:start + chunk]]
            p = _flat_pixels(render_batch([attrs] * len(chunk_seeds), chunk_seeds, spec))
            p_scaled_sq = (p / sigma_in).square().sum(1)
            for s, (top, weighted, total) in running.items():
                # -|y - p/si|^2 / (2 s^2) up to a term constant in p, which cancels in the normalisation
                log_w = (2 * (p @ noisy[s]) / sigma_in - p_scaled_sq) / (2 * s * s)
                new_top = torch.maximum(top, log_w.max())
                rescale = torch.exp(top - new_top)
                w = torch.exp(log_w - new_top)
                running[s] = [new_top, weighted * rescale + w @ p, total * rescale + w.sum()]
        for s, (_, weighted, total) in running.items():
            errors[s].append(float(((weighted / total - x) ** 2).mean()))
    return {s: sum(v) / len(v) for s, v in errors.items()}


@torch.no_grad()
def input_dependence(diffusion, net, clips: torch.Tensor, cond, sigmas: tuple[float, ...], *, sigma_in: float,
                     draws: int = 4, crop: tuple[int, int] | None = None, seed: int = 1) -> dict[float, float]:
    """Variance of D across ``draws`` noise draws for the same clips, averaged over pixels, per sigma.

    It splits the error into the part that moves with the noisy input and the part that does not: near
    zero, the network returns the same clip whatever it is given (a caption-only prediction), however
    much the input says about where things are.
    """
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to measure a variance, got {draws}")
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in sigmas:
        preds = [_denoise_noisy(diffusion, net, clips, cond, float(s), torch.randn(clips.shape, generator=g),
                                sigma_in=sigma_in, crop=crop) for _ in range(draws)]
        out[float(s)] = float(torch.stack(preds).var(dim=0, unbiased=True).mean())
    return out


def reference_errors(clips: torch.Tensor) -> dict[str, float]:
    """Mean squared error of three input-free predictions of ``clips`` (B, C, T, H, W); see the module doc."""
    median_colour = clips.flatten(2).median(dim=2).values[:, :, None, None, None]
    return {
        "mean clip of the batch": float(((clips - clips.mean(0, keepdim=True)) ** 2).mean()),
        "each clip's median colour": float(((clips - median_colour) ** 2).mean()),
        "each clip's temporal mean": float(((clips - clips.mean(2, keepdim=True)) ** 2).mean()),
    }


def upsampler_conditioning(model, clips: torch.Tensor, cond, aug_level: float = 0.0):
    """``cond`` with an upsampler's low-resolution input taken from its own target ``clips`` (B, C, T, h, w,
    unpadded): area-downsampled to the stage's low resolution and noise-augmented at ``aug_level`` with
    seeded noise. Returns the conditioning and the low-resolution clips."""
    up = model.config.upsampler
    low = resize_clips(clips, up.lowres_height, up.lowres_width)
    # as the cascade draws it: noise at the clip size, zero in the network's padding
    eps = pad_clips(torch.randn(clips.shape, generator=torch.Generator().manual_seed(0)), *model.noise_shape()[2:])
    aug = torch.full((clips.shape[0],), float(aug_level))
    return cond.replace(lowres=model.lowres_input(low, aug, eps), aug_level=aug), low


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of clips in [-1, 1] (peak-to-peak 2), from the mean squared error over all pixels."""
    return 10 * math.log10(4 / max(float(((a - b) ** 2).mean()), 1e-12))


@torch.no_grad()
def upsampler_samples(model, cond, low: torch.Tensor, *, steps: int, sigma_max: float, seed: int = 0) -> torch.Tensor:
    """The stage's deterministic samples (B, C, T, h, w) given ``cond`` made from the clean ``low`` clips."""
    from evalkit.generators.sampler import SamplerConfig

    noise = torch.randn((low.shape[0], *model.noise_shape()), generator=torch.Generator().manual_seed(seed))
    config = SamplerConfig(steps=steps, sigma_max=sigma_max, guidance=None, dynamic_threshold=0.995)
    out, _ = model.sample(noise, cond, config, lowres=low)
    return out.clamp(-1, 1)


def _load(checkpoint: str):
    """Generator and model of a checkpoint: the generator registered under the model name in its metadata."""
    from evalkit.generators.snapvideo import read_weights
    from evalkit.registry import GENERATORS

    _, meta = read_weights(checkpoint)
    cls = GENERATORS.get((meta.get("model") or {}).get("name") or "snapvideo-fit")
    gen = cls(cls.Config(checkpoint=checkpoint))
    return gen, gen.model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.generators.diagnostics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="shipped weights name or exported .safetensors file")
    parser.add_argument("--clips", type=int, default=16, help="held-out shapes clips (default 16)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS))
    parser.add_argument("--seed", type=int, default=12345, help="shapes stream seed (not a training seed)")
    parser.add_argument("--draws", type=int, default=0, metavar="N",
                        help="also print the variance of D over N noise draws (>= 2), the part of the error "
                             "that follows the input (default off)")
    parser.add_argument("--posterior-pool", type=int, default=0, metavar="K",
                        help="also print the caption-aware posterior bar from K rendered clips per clip "
                             "(4096: about 15 s per clip on one core; default off)")
    parser.add_argument("--aug-level", type=float, default=0.0,
                        help="upsampler stages: noise augmentation of the low-resolution input (default 0)")
    parser.add_argument("--sample", type=int, nargs="*", default=None, metavar="STEPS",
                        help="upsampler stages: also sample the clips with these Heun step counts (conditional, "
                             "dynamic thresholding 0.995) and print their PSNR against the real clips")
    parser.add_argument("--sigma-max", type=float, nargs="+", default=[10.0],
                        help="with --sample: sigma_max values to sample from (default 10)")
    args = parser.parse_args(argv)
    gen, model = _load(args.checkpoint)
    if args.posterior_pool and model.is_upsampler:
        parser.error("--posterior-pool needs a base stage: the posterior ignores the low-resolution input")
    if args.sample and not model.is_upsampler:
        parser.error("--sample scores an upsampler against real clips; a base stage has no input to keep")
    frames, height, width = model.clip_shape
    spec = VideoSpec(frames=frames, height=height, width=width, fps=24.0)
    data = ShapesTrainingData(spec, image_ratio=0.0, seed=args.seed, length=10**6)
    videos, captions, fps, _ = data.batch(list(range(args.clips)))
    target = videos_to_clips(videos)
    emb = gen.encoder.encode(captions)
    cond = make_conditioning(emb.tokens, emb.mask, fps=torch.as_tensor(fps, dtype=torch.float32),
                             resolution=(height, width))
    bars = {}
    if model.is_upsampler:
        cond, low = upsampler_conditioning(model, target, cond, args.aug_level)
        bars["low-res input, resized up"] = float(((resize_clips(low, height, width) - target) ** 2).mean())
    # a residual stage diffuses target - anchor; its error on that equals the error of anchor + D on the clip
    diffused = target - model.resized_lowres(low) if model.is_residual else target
    clips = pad_clips(diffused, *model.noise_shape()[2:])
    errors = denoiser_error(model.diffusion, model.net, clips, cond, tuple(args.sigmas), sigma_in=model.sigma_in,
                            crop=(height, width))
    columns = {"MSE of D": errors}
    if args.draws:
        columns[f"input-dependent part ({args.draws} draws)"] = input_dependence(
            model.diffusion, model.net, clips, cond, tuple(args.sigmas), sigma_in=model.sigma_in, draws=args.draws,
            crop=(height, width))
    if args.posterior_pool:
        columns[f"caption-aware posterior ({args.posterior_pool} clips)"] = caption_posterior_errors(
            data, list(range(args.clips)), tuple(args.sigmas), sigma_in=model.sigma_in, pool=args.posterior_pool)
    print(f"{'sigma':>8}" + "".join(f"  {name}" for name in columns))
    for s in errors:
        print(f"{s:>8g}" + "".join(f"  {values[s]:>{len(name)}.4f}" for name, values in columns.items()))
    print("predictions that ignore the noisy input:")
    for name, e in {**reference_errors(target), **bars}.items():
        print(f"  {name:<27} {e:.4f}")
    if args.sample:
        print(f"samples from the true low-resolution clips, PSNR against the real clips (resized up: "
              f"{psnr(model.resized_lowres(low), target):.2f} dB):")
        for sigma_max in args.sigma_max:
            for steps in args.sample:
                out = upsampler_samples(model, cond, low, steps=steps, sigma_max=sigma_max)
                print(f"  {steps:>3} steps from sigma {sigma_max:g}: {psnr(out, target):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
