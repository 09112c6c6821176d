"""Snap Video behind the Generator contract: one FIT stage (``snapvideo-fit``) or the cascade
(``snapvideo-cascade``: base stage, then an upsampler conditioned on the noise-augmented base video).

``SnapVideoModel`` is the trainable unit (FIT network + sigma_in EDM). Training entry point, used by
``evalkit train`` through the ``TRAINABLE_MODELS`` entry ``snapvideo-fit``:

    model.loss(videos, text_tokens, text_mask, fps, is_image=None, generator=None) -> scalar

videos: uint8 (B, T, H, W, 3) or float in [-1, 1] of the same layout, at the model's clip size (e.g.
16x36x64; padded to the network's 40 rows inside); text_tokens (B, L, D) float and text_mask (B, L)
bool from the text encoder; fps (B,) float, ``inf`` for images; is_image (B,) bool (image samples
are made static: their first frame repeated over T, conditioned on frame interval 0); generator: the
torch.Generator all diffusion randomness is drawn from. Upsampler models derive their low-resolution
input from ``videos`` (area downsampling) and draw a noise-augmentation level ~ U(0, aug_max).

Generation: per-sample torch Generators seeded by the sample's seed draw the initial noise (and the
upsampler's augmentation noise), so a seed gives the same video alone or in any batch. Without a
checkpoint the networks are random, seeded by ``init_seed``: only for smoke tests, and marked so
(``random_weights``). Weights files are the trainer's ``save_weights`` format (safetensors + JSON).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.config import to_dict
from evalkit.errors import ConfigError, InputError, WeightsError
from evalkit.generators.base import Generator
from evalkit.generators.checkpoints import load_weights, training_cost
from evalkit.generators.conditioning import Conditioning, make_conditioning
from evalkit.generators.diffusion import SigmaInEDM, training_loss
from evalkit.generators.fit import FIT, count_parameters, replace_config
from evalkit.generators.model_configs import SnapVideoModelConfig, resolve_model_config
from evalkit.generators.sampler import SamplerConfig, SampleStats, sample
from evalkit.generators.shipped import SHIPPED, checkpoint_path
from evalkit.generators.text_encoders import TextEncoder, build_text_encoder
from evalkit.generators.trainer import TRAINABLE_MODELS
from evalkit.registry import GENERATORS
from evalkit.seeding import torch_generator
from evalkit.video import VideoSpec

# -- clip layout ---------------------------------------------------------------------------------


def videos_to_clips(videos: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in [-1, 1]) videos (B, T, H, W, 3) -> float clips (B, 3, T, H, W) in [-1, 1]."""
    if videos.ndim != 5 or videos.shape[-1] != 3:
        raise InputError(f"videos: expected (B, T, H, W, 3), got shape {tuple(videos.shape)}")
    x = videos.permute(0, 4, 1, 2, 3)
    if videos.dtype == torch.uint8:
        return x.float() / 127.5 - 1.0
    if not videos.is_floating_point():
        raise InputError(f"videos: expected uint8 or float in [-1, 1], got dtype {videos.dtype}")
    return x.float()


def clips_to_videos(x: torch.Tensor) -> torch.Tensor:
    """Float clips (B, 3, T, H, W) in [-1, 1] -> uint8 videos (B, T, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()


def static_clips(images: torch.Tensor, frames: int) -> torch.Tensor:
    """Images (B, H, W, 3) or (B, 1, H, W, 3) as T-frame clips of an infinite-fps video (B, T, H, W, 3)."""
    if images.ndim == 4:
        images = images[:, None]
    if images.ndim != 5 or images.shape[1] != 1:
        raise InputError(f"images: expected (B, H, W, 3) or (B, 1, H, W, 3), got {tuple(images.shape)}")
    return images.expand(-1, frames, -1, -1, -1).contiguous()


def pad_clips(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centred replicate padding of (B, C, T, h, w) clips to the network's height x width."""
    dh, dw = height - x.shape[-2], width - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.pad(frames, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    return frames.reshape(b, t, c, height, width).transpose(1, 2)


def crop_clips(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of ``pad_clips``: the centred height x width window."""
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


def resize_clips(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-frame resize of (B, C, T, h, w): area averaging down, bilinear up."""
    b, c, t, h, w = x.shape
    if (h, w) == (height, width):
        return x
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    if height <= h and width <= w:
        frames = F.interpolate(frames, size=(height, width), mode="area")
    else:
        frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, height, width).transpose(1, 2)


# -- the trainable model -------------------------------------------------------------------------


class SnapVideoModel(nn.Module):
    """One Snap Video stage: FIT network + sigma_in EDM, with its training loss and sampler."""

    def __init__(self, config: SnapVideoModelConfig):
        super().__init__()
        self.config = config
        self.net = FIT(config.fit)
        self.diffusion = SigmaInEDM(config.diffusion)

    @property
    def is_upsampler(self) -> bool:
        return self.config.upsampler is not None

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of the clips the model makes (before padding)."""
        return (self.config.fit.frames, *self.config.clip_size)

    @property
    def sigma_in(self) -> float:
        fit = self.config.fit
        return self.diffusion.sigma_in_for(fit.frames, fit.width)

    def check_clips(self, x: torch.Tensor, what: str = "videos") -> None:
        t, h, w = self.clip_shape
        if tuple(x.shape[2:]) != (t, h, w):
            raise InputError(
                f"{what}: expected clips of {t} frames at {h}x{w} (model config), got {x.shape[2]} frames at "
                f"{x.shape[3]}x{x.shape[4]}"
            )

    def lowres_input(self, lowres: torch.Tensor, aug_level: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Low-resolution clips (B, 3, T, h, w) in [-1, 1] -> the upsampler's extra input channels:
        resized to the clip size, padded, noise-augmented with std ``aug_level`` and rescaled to unit variance."""
        _, h, w = self.clip_shape
        up = pad_clips(resize_clips(lowres, h, w), self.config.fit.height, self.config.fit.width)
        a = aug_level.to(up.dtype).reshape(-1, 1, 1, 1, 1)
        sd = self.diffusion.sigma_data
        return (up + a * eps.to(up.dtype)) / torch.sqrt(sd ** 2 + a ** 2)

    @property
    def is_residual(self) -> bool:
        """Whether the stage diffuses the clip minus its resized low-resolution input."""
        return self.is_upsampler and self.config.upsampler.residual

    def resized_lowres(self, lowres: torch.Tensor) -> torch.Tensor:
        """Low-resolution clips (B, 3, T, h, w) resized (bilinear) to the clip size: a residual stage's anchor."""
        _, h, w = self.clip_shape
        return resize_clips(lowres, h, w)

    def loss(
        self,
        videos: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        fps: torch.Tensor | float,
        is_image: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        resolution: torch.Tensor | tuple[int, int] | None = None,
        lowres: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training loss of one batch (see the module docstring)."""
        device = next(self.parameters()).device
        x = videos_to_clips(videos.to(device))
        self.check_clips(x)
        b = x.shape[0]
        if is_image is not None:
            is_image = is_image.to(device).bool()
            x = torch.where(is_image[:, None, None, None, None], x[:, :, :1].expand_as(x), x)
        cond = make_conditioning(text_tokens.to(device).float(), text_mask.to(device),
                                 fps=torch.as_tensor(fps, dtype=torch.float32).to(device),
                                 resolution=resolution if resolution is not None else self.config.clip_size,
                                 is_image=is_image)
        if self.is_upsampler:
            up = self.config.upsampler
            if lowres is None:
                low = resize_clips(x, up.lowres_height, up.lowres_width)
            else:
                low = videos_to_clips(lowres.to(device))
            aug = torch.rand(b, generator=generator, device=device) * up.aug_max
            eps = torch.randn(x.shape, generator=generator, device=device)
            cond = cond.replace(lowres=self.lowres_input(low, aug, eps), aug_level=aug)
            if self.is_residual:
                x = x - self.resized_lowres(low)
        x = pad_clips(x, self.config.fit.height, self.config.fit.width)
        return training_loss(self.diffusion, self.net, x, cond, generator=generator,
                             text_dropout=self.config.text_dropout, self_cond_rate=self.config.self_cond_rate)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, cond: Conditioning, sampler: SamplerConfig, *,
               lowres: torch.Tensor | None = None) -> tuple[torch.Tensor, SampleStats]:
        """Clips (B, 3, T, h, w) at the clip size, float in about [-1, 1], from noise at the network size.

        A residual upsampler needs ``lowres``, the clean low-resolution clips its conditioning was made from:
        the sample is added to them resized up."""
        _, h, w = self.clip_shape
        if not self.is_residual:
            x, stats = sample(self.diffusion, self.net, noise, cond, sampler, sigma_in=self.sigma_in)
            return crop_clips(x, h, w), stats
        if lowres is None:
            raise InputError("a residual upsampler samples the difference from its low-resolution input: "
                             "pass lowres (the clean low-resolution clips) to sample()")
        fit = self.config.fit
        anchor = pad_clips(self.resized_lowres(lowres.to(noise.device, torch.float32)), fit.height, fit.width)
        x, stats = sample(self.diffusion, self.net, noise, cond, sampler, sigma_in=self.sigma_in, offset=anchor)
        return crop_clips(x + anchor, h, w), stats

    def noise_shape(self) -> tuple[int, int, int, int]:
        fit = self.config.fit
        return (fit.in_channels, fit.frames, fit.height, fit.width)


def build_model(model: str | dict[str, Any] | SnapVideoModelConfig, *, text_dim: int | None = None,
                path: str = "model") -> SnapVideoModel:
    """A model from a config name or mapping; ``text_dim`` (the encoder's width) overrides the config's."""
    config = resolve_model_config(model, path=path)
    if text_dim is not None and text_dim != config.fit.text_dim:
        config.fit = replace_config(config.fit, text_dim=text_dim)
    return SnapVideoModel(config)


@TRAINABLE_MODELS.register("snapvideo-fit")
def trainable_snapvideo(params: dict[str, Any], *, text_dim: int, spec: VideoSpec) -> SnapVideoModel:
    """Trainer builder: params ``{model: <name or mapping>}`` (default fit-tiny); text_dim from the encoder."""
    params = dict(params)
    spec_model = params.pop("model", "fit-tiny")
    if params:
        raise ConfigError(f"unknown key(s) {sorted(params)} (valid keys: model)", path="model.params")
    model = build_model(spec_model, text_dim=text_dim, path="model.params.model")
    t, h, w = model.clip_shape
    if (spec.frames, spec.height, spec.width) != (t, h, w):
        raise ConfigError(
            f"the model makes {t}x{h}x{w} clips (frames x height x width) but data is {spec.frames}x{spec.height}x"
            f"{spec.width}; set data.frames/height/width or the model's fit/video sizes to match", path="data"
        )
    return model


# -- weights -------------------------------------------------------------------------------------


def load_model_state(model: SnapVideoModel, state: dict[str, torch.Tensor], file: str | Path) -> None:
    """Strict load with an error that names the file and the offending keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
                         + (" (text_dim differs: use the text encoder the model was trained with)"
                            if "text_proj" in k else ""))
        raise WeightsError(f"{file}: weights do not fit the model config ({'; '.join(parts)})")
    model.load_state_dict(state)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata of a checkpoint given as a file path or a shipped name (``fit-tiny-shapes``)."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found (expected a .safetensors weights file from "
                           f"`evalkit train` export, or a shipped name: {', '.join(SHIPPED)})")
    return load_weights(path)


def model_spec_from_meta(meta: dict[str, Any], file: str | Path, model_name: str = "snapvideo-fit",
                         default: str = "fit-tiny") -> str | dict[str, Any]:
    """The model config a weights file was trained with (``evalkit train`` export metadata)."""
    section = meta.get("model") or {}
    if section.get("name") != model_name:
        raise WeightsError(f"{file}: weights of model {section.get('name')!r}, expected '{model_name}' "
                           "(or set `model` in the generator config)")
    if meta.get("model_resolved"):
        return meta["model_resolved"]  # the architecture it was trained with, whatever the names mean now
    return (section.get("params") or {}).get("model", default)


# -- generators ----------------------------------------------------------------------------------


@dataclass
class StageConfig:
    """One cascade stage: model, weights and sampler settings."""

    model: str | dict[str, Any] | None = None  # name or mapping; None: from the checkpoint (else fit-tiny)
    checkpoint: str | None = None      # .safetensors weights; None: random init from init_seed (smoke only)
    steps: int = 256                   # paper: 256 base, 40 upsampler
    guidance: float | None = 3.0       # w in D_u + w (D_c - D_u); 1 = conditional only; null = no guidance
    guidance_mode: Literal["batched", "separate"] = "batched"
    guidance_oscillation: list[float] | None = None  # [high, low]; overrides guidance
    oscillation_start: int = 0
    dynamic_threshold: float | None = 0.995
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        self.sampler_config()  # validate

    def sampler_config(self) -> SamplerConfig:
        return SamplerConfig(steps=self.steps, sigma_min=self.sigma_min, sigma_max=self.sigma_max, rho=self.rho,
                             guidance=self.guidance, guidance_mode=self.guidance_mode,
                             oscillation=self.guidance_oscillation, oscillation_start=self.oscillation_start,
                             dynamic_threshold=self.dynamic_threshold)


@dataclass
class SnapVideoConfig(StageConfig):
    text_encoder: str | None = None    # registered text encoder; None: the checkpoint's, else the model's
    text_encoder_params: dict[str, Any] = field(default_factory=dict)
    init_seed: int | None = None       # required without a checkpoint: seeds the random weights
    orig_resolution: list[int] | None = None  # (height, width) token; None: the clip size


@dataclass
class CascadeConfig:
    base: StageConfig = field(default_factory=lambda: StageConfig(model="fit-tiny", steps=256))
    upsampler: StageConfig = field(default_factory=lambda: StageConfig(model="fit-upsampler-tiny", steps=40))
    aug_level: float = 0.1             # noise augmentation of the base video at inference (pixels in [-1, 1])
    text_encoder: str | None = None
    text_encoder_params: dict[str, Any] = field(default_factory=dict)
    init_seed: int | None = None
    orig_resolution: list[int] | None = None

    def __post_init__(self) -> None:
        if self.aug_level < 0:
            raise ValueError(f"aug_level must be >= 0, got {self.aug_level}")


class _Stage:
    """A loaded stage: model (weights or seeded random init), sampler settings, text-encoder choice."""

    def __init__(self, config: StageConfig, *, init_seed: int | None, label: str):
        self.config, self.label = config, label
        self.state, self.meta = None, {}
        if config.checkpoint is not None:
            self.state, self.meta = read_weights(config.checkpoint)
            self.model_spec = config.model if config.model is not None else model_spec_from_meta(
                self.meta, config.checkpoint)
        else:
            if init_seed is None:
                raise ConfigError(f"{label}: no checkpoint given; set '{label}checkpoint' to a weights file, or "
                                  "init_seed for a smoke run with random weights", path=f"{label}checkpoint")
            self.model_spec = config.model if config.model is not None else "fit-tiny"
        self.init_seed = init_seed
        self.model_config = resolve_model_config(self.model_spec, path=f"{label}model")
        self.random_weights = self.state is None
        self.model: SnapVideoModel | None = None

    def encoder_choice(self) -> tuple[str, dict[str, Any]] | None:
        section = self.meta.get("text_encoder")
        if isinstance(section, dict) and section.get("name"):
            return section["name"], dict(section.get("params") or {})
        return None

    def load(self, text_dim: int) -> SnapVideoModel:
        if self.model is None:
            if self.random_weights:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.init_seed)
                    model = build_model(self.model_config, text_dim=text_dim)
            else:
                model = build_model(self.model_config, text_dim=text_dim)
                load_model_state(model, self.state, self.config.checkpoint)
                self.state = None
            self.model = model.eval().requires_grad_(False)
            self._check_sigma_max()
        return self.model

    def _check_sigma_max(self) -> None:
        """Warn when sampling starts far above every sigma the stage was trained at (5 std of ln sigma)."""
        d = self.model_config.diffusion
        ceiling = math.exp(d.P_mean + 5 * d.P_std)
        if self.config.sigma_max > ceiling:
            warnings.warn(f"{self.label or 'stage '}sigma_max = {self.config.sigma_max:g} is far above the sigmas "
                          f"this model was trained at (ln sigma ~ N({d.P_mean:g}, {d.P_std:g}^2), five deviations "
                          f"up: {ceiling:.3g}); its denoiser is untested there: set {self.label}sigma_max lower",
                          stacklevel=4)


def generator_info(models: list[nn.Module], metas: list[dict[str, Any]], random_weights: bool) -> dict[str, Any]:
    """``Generator.info()`` of diffusion generators: parameters of all stages and their training cost."""
    out: dict[str, Any] = {"parameters": sum(count_parameters(m) for m in models), "random_weights": random_weights}
    costs = [training_cost(m) for m in metas]
    if costs and all(c is not None for c in costs):
        out["training"] = costs[0] if len(costs) == 1 else {
            "steps": sum(c["steps"] or 0 for c in costs), "samples": sum(c["samples"] or 0 for c in costs),
            "wall_s": sum(c["wall_s"] for c in costs) if all(c["wall_s"] for c in costs) else None,
            "stages": costs}
    return out


def _text_encoder(name: str | None, params: dict[str, Any], stage: _Stage) -> TextEncoder:
    if name is None:
        found = stage.encoder_choice()
        name, params = found if found is not None else (stage.model_config.text_encoder, params)
    return build_text_encoder(name, params)


def _initial_noise(gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


class _SnapVideoBase(Generator):
    """Shared text encoding, conditioning and stage sampling."""

    random_weights: bool = False

    def _warn_random(self) -> None:
        if self.random_weights:
            warnings.warn(f"{type(self).__name__}: running with random weights (init_seed); the videos are noise-"
                          "like and results are not comparable with any published number", stacklevel=3)

    def _orig_resolution(self, model: SnapVideoModel) -> tuple[int, int]:
        res = self.config.orig_resolution
        if res is None:
            return model.config.clip_size
        if len(res) != 2:
            raise ConfigError(f"expected [height, width], got {res}", path="orig_resolution")
        return int(res[0]), int(res[1])

    def _run_stage(self, stage: _Stage, emb, gens: list[torch.Generator], spec: VideoSpec,
                   lowres: torch.Tensor | None = None) -> torch.Tensor:
        model = stage.load(self.encoder.dim).to(self.device)
        cond = make_conditioning(emb.tokens.to(self.device), emb.mask.to(self.device), fps=float(spec.fps),
                                 resolution=self._orig_resolution(model))
        noise = _initial_noise(gens, model.noise_shape())
        if lowres is not None:
            aug = torch.full((len(gens),), float(self.config.aug_level))
            eps = _initial_noise(gens, (3, model.config.fit.frames, *model.config.clip_size))
            eps = pad_clips(eps, model.config.fit.height, model.config.fit.width)
            cond = cond.replace(lowres=model.lowres_input(lowres, aug.to(self.device), eps.to(self.device)),
                                aug_level=aug.to(self.device))
        sampler = stage.config.sampler_config()
        with torch.inference_mode():
            x, stats = model.sample(noise.to(self.device), cond, sampler,
                                    lowres=None if lowres is None else lowres.to(self.device))
        self.last_stats = stats
        return x

    def _stages(self) -> list[_Stage]:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        stages = self._stages()
        return generator_info([s.model for s in stages if s.model is not None], [s.meta for s in stages],
                              self.random_weights)

    @staticmethod
    def _check_spec(model: SnapVideoModel, spec: VideoSpec, what: str) -> None:
        t, h, w = model.clip_shape
        if (spec.frames, spec.height, spec.width) != (t, h, w):
            raise InputError(f"{what} makes {t} frames at {h}x{w} (height x width), the protocol asks for "
                             f"{spec.frames} frames at {spec.height}x{spec.width}; pick a matching model config")


@GENERATORS.register("snapvideo-fit")
class SnapVideoGenerator(_SnapVideoBase):
    """One Snap Video FIT stage: text -> clip at the model's size (e.g. 16x36x64)."""

    Config = SnapVideoConfig

    def __init__(self, config: SnapVideoConfig | None = None):
        super().__init__(config)
        self.stage = _Stage(self.config, init_seed=self.config.init_seed, label="")
        self.random_weights = self.stage.random_weights
        self.encoder = _text_encoder(self.config.text_encoder, self.config.text_encoder_params, self.stage)
        self.model = self.stage.load(self.encoder.dim)

    #: what the contract suite's test instance makes (tests/test_generator_contract.py)
    test_spec = VideoSpec(frames=4, height=8, width=16, fps=8.0)

    def _stages(self) -> list[_Stage]:
        return [self.stage]

    @classmethod
    def test_instance(cls, workdir: Path) -> SnapVideoGenerator:
        """A random-weight 4x8x16 FIT with a hashed text encoder and two sampler steps."""
        return cls(SnapVideoConfig(model=_test_model("fit-tiny", 8, 16), init_seed=0, steps=2, guidance=2.0,
                                   **_TEST_ENCODER))

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        self._check_spec(self.model, spec, "snapvideo-fit")
        self._warn_random()
        emb = self.encoder.encode(prompts)
        gens = [torch_generator(s) for s in seeds]
        x = self._run_stage(self.stage, emb, gens, spec)
        self.last_nfe = float(self.stage.config.sampler_config().evaluations)
        return clips_to_videos(x).cpu()


@GENERATORS.register("snapvideo-cascade")
class SnapVideoCascade(_SnapVideoBase):
    """Base FIT stage then FIT upsampler conditioned on the noise-augmented, resized base video."""

    Config = CascadeConfig

    def __init__(self, config: CascadeConfig | None = None):
        super().__init__(config)
        cfg = self.config
        self.base = _Stage(cfg.base, init_seed=cfg.init_seed, label="base.")
        up_seed = None if cfg.init_seed is None else cfg.init_seed + 1
        self.upsampler = _Stage(cfg.upsampler, init_seed=up_seed, label="upsampler.")
        self.random_weights = self.base.random_weights or self.upsampler.random_weights
        self.encoder = _text_encoder(cfg.text_encoder, cfg.text_encoder_params, self.base)
        base, up = self.base.load(self.encoder.dim), self.upsampler.load(self.encoder.dim)
        if up.config.upsampler is None:
            raise ConfigError("the upsampler stage's model config has no 'upsampler' section", path="upsampler.model")
        if base.config.upsampler is not None:
            raise ConfigError("the base stage's model config is an upsampler", path="base.model")
        want = (up.config.upsampler.lowres_height, up.config.upsampler.lowres_width)
        if base.config.clip_size != want or base.clip_shape[0] != up.clip_shape[0]:
            raise ConfigError(f"the base stage makes {base.clip_shape} clips, the upsampler expects "
                              f"({up.clip_shape[0]}, {want[0]}, {want[1]})", path="upsampler.model")

    test_spec = VideoSpec(frames=4, height=16, width=32, fps=8.0)

    def _stages(self) -> list[_Stage]:
        return [self.base, self.upsampler]

    @classmethod
    def test_instance(cls, workdir: Path) -> SnapVideoCascade:
        """Random-weight 4x8x16 base and 4x16x32 upsampler stages, two sampler steps each."""
        up = _test_model("fit-upsampler-tiny", 16, 32, group_size=[4, 2, 4])
        up["upsampler"] = {"lowres_height": 8, "lowres_width": 16}
        config = CascadeConfig(base=StageConfig(model=_test_model("fit-tiny", 8, 16), steps=2),
                               upsampler=StageConfig(model=up, steps=2), init_seed=0, aug_level=0.1,
                               **_TEST_ENCODER)
        return cls(config)

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        self._check_spec(self.upsampler.model, spec, "snapvideo-cascade")
        self._warn_random()
        emb = self.encoder.encode(prompts)
        gens = [torch_generator(s) for s in seeds]
        low = self._run_stage(self.base, emb, gens, spec).clamp(-1, 1)
        x = self._run_stage(self.upsampler, emb, gens, spec, lowres=low)
        self.last_nfe = float(self.base.config.sampler_config().evaluations
                              + self.upsampler.config.sampler_config().evaluations)
        return clips_to_videos(x).cpu()


_TEST_ENCODER: dict[str, Any] = {"text_encoder": "hashed", "text_encoder_params": {"dim": 16}}


def _test_model(base: str, height: int, width: int, group_size: list[int] | None = None) -> dict[str, Any]:
    """A model-config mapping for CPU-second test instances (4 frames, one block, 8 latents)."""
    fit = {"frames": 4, "height": height, "width": width, "group_size": group_size or [4, 1, 2], "patch_width": 16,
           "num_latents": 8, "latent_width": 32, "num_blocks": 1, "global_layers": 1, "patch_head_dim": 8,
           "latent_head_dim": 16, "cond_width": 32}
    return {"base": base, "fit": fit, "video_height": height, "video_width": width}


def describe(generator: _SnapVideoBase) -> dict[str, Any]:
    """Settings worth recording next to results (config, weights provenance, sigma_in, NFE)."""
    stages = [generator.stage] if isinstance(generator, SnapVideoGenerator) else [generator.base, generator.upsampler]
    return {
        "config": to_dict(generator.config),
        "random_weights": generator.random_weights,
        "text_encoder": generator.encoder.fingerprint,
        "stages": [{"model": to_dict(s.model_config), "sigma_in": s.model.sigma_in if s.model else None,
                    "checkpoint": s.config.checkpoint, "evaluations": s.config.sampler_config().evaluations}
                   for s in stages],
    }


__all__ = [
    "CascadeConfig", "SnapVideoCascade", "SnapVideoConfig", "SnapVideoGenerator", "SnapVideoModel", "StageConfig",
    "build_model", "clips_to_videos", "crop_clips", "describe", "pad_clips", "resize_clips", "static_clips",
    "trainable_snapvideo", "videos_to_clips",
]
