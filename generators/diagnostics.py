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

    python -m evalkit.generators.diagnostics fit-tiny-shapes            # shipped name or weights file
    python -m evalkit.generators.diagnostics runs/train/unet/export.safetensors --clips 32
"""

from __future__ import annotations

import argparse
import sys

import torch

from evalkit.datasets.shapes.dataset import ShapesTrainingData
from evalkit.generators.conditioning import make_conditioning
from evalkit.generators.snapvideo import crop_clips, pad_clips, videos_to_clips
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
        eps = torch.randn(clips.shape, generator=g)
        sigma = torch.full((clips.shape[0],), float(s))
        d, _ = diffusion.denoise(net, diffusion.add_noise(clips, sigma, eps, sigma_in), sigma, cond, sigma_in)
        if crop is not None:
            d = crop_clips(d, *crop)
        out[float(s)] = float(((d - ref) ** 2).mean())
    return out


def reference_errors(clips: torch.Tensor) -> dict[str, float]:
    """Mean squared error of three input-free predictions of ``clips`` (B, C, T, H, W); see the module doc."""
    median_colour = clips.flatten(2).median(dim=2).values[:, :, None, None, None]
    return {
        "mean clip of the batch": float(((clips - clips.mean(0, keepdim=True)) ** 2).mean()),
        "each clip's median colour": float(((clips - median_colour) ** 2).mean()),
        "each clip's temporal mean": float(((clips - clips.mean(2, keepdim=True)) ** 2).mean()),
    }


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
    args = parser.parse_args(argv)
    gen, model = _load(args.checkpoint)
    frames, height, width = model.clip_shape
    spec = VideoSpec(frames=frames, height=height, width=width, fps=24.0)
    data = ShapesTrainingData(spec, image_ratio=0.0, seed=args.seed, length=10**6)
    videos, captions, fps, _ = data.batch(list(range(args.clips)))
    net_h, net_w = model.noise_shape()[2:]
    clips = pad_clips(videos_to_clips(videos), net_h, net_w)
    emb = gen.encoder.encode(captions)
    cond = make_conditioning(emb.tokens, emb.mask, fps=torch.as_tensor(fps, dtype=torch.float32),
                             resolution=(height, width))
    errors = denoiser_error(model.diffusion, model.net, clips, cond, tuple(args.sigmas), sigma_in=model.sigma_in,
                            crop=(height, width))
    print(f"{'sigma':>8}  {'MSE of D':>9}")
    for s, e in errors.items():
        print(f"{s:>8g}  {e:>9.4f}")
    print("predictions that ignore the noisy input:")
    for name, e in reference_errors(crop_clips(clips, height, width)).items():
        print(f"  {name:<27} {e:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
