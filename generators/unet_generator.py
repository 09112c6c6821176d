"""The U-Net video baseline behind the Generator contract (``unet-video``) and the trainer.

``UNetVideoModel`` pairs the video U-Net with the same sigma_in EDM (``SigmaInEDM``), the same
``training_loss`` (label dropout, no self-conditioning: a U-Net has no latents to carry), the same
Heun sampler with guidance and the same clip handling (padding 36 -> 40 rows, images as static
infinite-fps clips) as the Snap Video FIT model, so the two differ only in the network. The training
entry point ``TRAINABLE_MODELS["unet-video"]`` has the FIT model's signature:

    model.loss(videos, text_tokens, text_mask, fps, is_image=None, generator=None) -> scalar

Generation: per-sample CPU generators seeded by the sample's seed draw the initial noise, so a seed
gives the same video alone or in any batch. Weights files are the trainer's export format
(safetensors + JSON naming the model config and the text encoder). Without a checkpoint the network
is random, seeded by ``init_seed``: only for smoke tests, and marked so (``random_weights``).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalkit.errors import ConfigError, InputError
from evalkit.generators.base import Generator
from evalkit.generators.conditioning import Conditioning, make_conditioning
from evalkit.generators.diffusion import SigmaInEDM, training_loss
from evalkit.generators.sampler import SamplerConfig, SampleStats, sample
from evalkit.generators.snapvideo import (
    SnapVideoConfig,
    clips_to_videos,
    crop_clips,
    generator_info,
    load_model_state,
    model_spec_from_meta,
    pad_clips,
    read_weights,
    videos_to_clips,
)
from evalkit.generators.text_encoders import build_text_encoder
from evalkit.generators.trainer import TRAINABLE_MODELS
from evalkit.generators.unet import VideoUNet
from evalkit.generators.unet_configs import UNetModelConfig, resolve_unet_model_config
from evalkit.registry import GENERATORS
from evalkit.seeding import torch_generator
from evalkit.video import VideoSpec

MODEL_NAME = "unet-video"


class UNetVideoModel(nn.Module):
    """Video U-Net + sigma_in EDM, with the training loss and sampler FIT uses."""

    def __init__(self, config: UNetModelConfig):
        super().__init__()
        self.config = config
        self.net = VideoUNet(config.unet)
        self.diffusion = SigmaInEDM(config.diffusion)

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of the clips the model makes (before padding)."""
        return (self.config.frames, *self.config.clip_size)

    @property
    def sigma_in(self) -> float:
        return self.diffusion.sigma_in_for(self.config.frames, self.config.width)

    def noise_shape(self) -> tuple[int, int, int, int]:
        c = self.config
        return (c.unet.in_channels, c.frames, c.height, c.width)

    def check_clips(self, x: torch.Tensor) -> None:
        t, h, w = self.clip_shape
        if tuple(x.shape[2:]) != (t, h, w):
            raise InputError(f"videos: expected clips of {t} frames at {h}x{w} (model config), got {x.shape[2]} "
                             f"frames at {x.shape[3]}x{x.shape[4]}")

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
    ) -> torch.Tensor:
        """Training loss of one batch: images become static clips at frame interval 0, clips are padded
        to the network size, then the shared ``training_loss``."""
        device = next(self.parameters()).device
        x = videos_to_clips(videos.to(device))
        self.check_clips(x)
        if is_image is not None:
            is_image = is_image.to(device).bool()
            x = torch.where(is_image[:, None, None, None, None], x[:, :, :1].expand_as(x), x)
        cond = make_conditioning(text_tokens.to(device).float(), text_mask.to(device),
                                 fps=torch.as_tensor(fps, dtype=torch.float32).to(device),
                                 resolution=resolution if resolution is not None else self.config.clip_size,
                                 is_image=is_image)
        x = pad_clips(x, self.config.height, self.config.width)
        return training_loss(self.diffusion, self.net, x, cond, generator=generator,
                             text_dropout=self.config.text_dropout, self_cond_rate=0.0)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, cond: Conditioning, sampler: SamplerConfig) -> tuple[torch.Tensor, SampleStats]:
        """Clips (B, 3, T, h, w) at the clip size, float in about [-1, 1], from noise at the network size."""
        x, stats = sample(self.diffusion, self.net, noise, cond, sampler, sigma_in=self.sigma_in)
        _, h, w = self.clip_shape
        return crop_clips(x, h, w), stats


def build_unet_model(model: str | dict[str, Any] | UNetModelConfig, *, text_dim: int | None = None,
                     path: str = "model") -> UNetVideoModel:
    """A model from a config name or mapping; ``text_dim`` (the encoder's width) overrides the config's."""
    config = resolve_unet_model_config(model, path=path)
    if text_dim is not None and text_dim != config.unet.text_dim:
        config = dataclasses.replace(config, unet=dataclasses.replace(config.unet, text_dim=text_dim))
    return UNetVideoModel(config)


@TRAINABLE_MODELS.register(MODEL_NAME)
def trainable_unet(params: dict[str, Any], *, text_dim: int, spec: VideoSpec) -> UNetVideoModel:
    """Trainer builder: params ``{model: <name or mapping>}`` (default unet-tiny); text_dim from the encoder."""
    params = dict(params)
    model_spec = params.pop("model", "unet-tiny")
    if params:
        raise ConfigError(f"unknown key(s) {sorted(params)} (valid keys: model)", path="model.params")
    model = build_unet_model(model_spec, text_dim=text_dim, path="model.params.model")
    t, h, w = model.clip_shape
    if (spec.frames, spec.height, spec.width) != (t, h, w):
        raise ConfigError(f"the model makes {t}x{h}x{w} clips (frames x height x width) but data is "
                          f"{spec.frames}x{spec.height}x{spec.width}; set data.frames/height/width or the model's "
                          "sizes to match", path="data")
    return model


@dataclass
class UNetVideoConfig(SnapVideoConfig):
    """The same settings as ``snapvideo-fit`` (sampler, guidance, text encoder); ``model`` names a
    U-Net model config (unet-tiny, unet-85m, unet-284m or a mapping), None = the checkpoint's."""


@GENERATORS.register(MODEL_NAME)
class UNetVideoGenerator(Generator):
    """Text -> clip at the model's size with the video U-Net and the shared Heun sampler."""

    Config = UNetVideoConfig

    def __init__(self, config: UNetVideoConfig | None = None):
        super().__init__(config)
        cfg = self.config
        state, meta = None, {}
        if cfg.checkpoint is not None:
            state, meta = read_weights(cfg.checkpoint)
            model_spec = (cfg.model if cfg.model is not None
                          else model_spec_from_meta(meta, cfg.checkpoint, MODEL_NAME, "unet-tiny"))
        elif cfg.init_seed is None:
            raise ConfigError("no checkpoint given; set 'checkpoint' to a weights file, or init_seed for a smoke "
                              "run with random weights", path="checkpoint")
        else:
            model_spec = cfg.model if cfg.model is not None else "unet-tiny"
        model_config = resolve_unet_model_config(model_spec, path="model")
        self.random_weights = state is None
        encoder_name, encoder_params = cfg.text_encoder, dict(cfg.text_encoder_params)
        if encoder_name is None:
            section = meta.get("text_encoder")
            if isinstance(section, dict) and section.get("name"):
                encoder_name, encoder_params = section["name"], dict(section.get("params") or {})
            else:
                encoder_name = model_config.text_encoder
        self.encoder = build_text_encoder(encoder_name, encoder_params)
        if self.random_weights:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.init_seed)
                self.model = build_unet_model(model_config, text_dim=self.encoder.dim)
        else:
            self.model = build_unet_model(model_config, text_dim=self.encoder.dim)
            load_model_state(self.model, state, cfg.checkpoint)
        self.model.eval().requires_grad_(False)
        self.last_stats: SampleStats | None = None
        self.meta = meta

    def info(self) -> dict[str, Any]:
        return generator_info([self.model], [self.meta], self.random_weights)

    @classmethod
    def test_instance(cls, workdir: Path) -> UNetVideoGenerator:
        """A random-weight 4x16x16 model with a hashed text encoder and two sampler steps."""
        model = {"base": "unet-tiny", "frames": 4, "height": 16, "width": 16, "video_height": None,
                 "video_width": None}
        return cls(UNetVideoConfig(model=model, init_seed=0, steps=2, text_encoder="hashed",
                                   text_encoder_params={"dim": 16, "max_length": 8}))

    def to(self, device: str | torch.device) -> UNetVideoGenerator:
        super().to(device)
        self.model.to(self.device)
        return self

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        t, h, w = self.model.clip_shape
        if (spec.frames, spec.height, spec.width) != (t, h, w):
            raise InputError(f"unet-video makes {t} frames at {h}x{w} (height x width), the protocol asks for "
                             f"{spec.frames} frames at {spec.height}x{spec.width}; pick a matching model config")
        if self.random_weights:
            warnings.warn("unet-video: running with random weights (init_seed); the videos are noise-like and "
                          "results are not comparable with any published number", stacklevel=3)
        sampler = self.config.sampler_config()
        self.last_nfe = float(sampler.evaluations)
        if not prompts:
            return torch.zeros((0, *spec.shape), dtype=torch.uint8)
        emb = self.encoder.encode(prompts)
        res = self.config.orig_resolution or list(self.model.config.clip_size)
        if len(res) != 2:
            raise ConfigError(f"expected [height, width], got {res}", path="orig_resolution")
        cond = make_conditioning(emb.tokens.to(self.device), emb.mask.to(self.device), fps=float(spec.fps),
                                 resolution=(int(res[0]), int(res[1])))
        noise = torch.stack([torch.randn(self.model.noise_shape(), generator=torch_generator(s)) for s in seeds])
        with torch.inference_mode():
            x, self.last_stats = self.model.sample(noise.to(self.device), cond, sampler)
        return clips_to_videos(x).cpu()
