"""Adapter for diffusers text-to-video pipelines (``diffusers`` generator).

Any pipeline whose ``__call__`` accepts ``prompt_embeds`` works (TextToVideoSDPipeline / ModelScope,
AnimateDiff, CogVideoX, ...). Prompts are embedded one at a time, either by the pipeline's own
``encode_prompt`` (its tokenizer and text encoder) or by an evalkit text encoder, and passed as
``prompt_embeds`` / ``negative_prompt_embeds``; every sample draws its initial noise from its own CPU
``torch.Generator`` seeded with the sample's seed (a list of generators, one per sample, or one call
per sample), so a seed gives the same video whatever batch it is in. Frames come back as uint8
(B, T, H, W, 3), rounded as diffusers' own ``numpy_to_pil`` rounds.

Loading is offline only: ``path`` is a local directory written by ``pipeline.save_pretrained(dir)``
(or a downloaded hub snapshot) and is opened with ``from_pretrained(dir, local_files_only=True)``::

    generator:
      name: diffusers
      params: {path: /models/text-to-video-ms-1.7b, num_inference_steps: 25, guidance_scale: 9.0,
               torch_dtype: float16}
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from evalkit.errors import ConfigError, InputError, WeightsError
from evalkit.generators.base import Generator
from evalkit.registry import GENERATORS
from evalkit.seeding import torch_generator
from evalkit.video import VideoSpec

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclasses.dataclass
class DiffusersConfig:
    #: local pipeline directory (``save_pretrained`` layout, with model_index.json)
    path: str = ""
    #: diffusers class to load with; empty = the ``_class_name`` written in model_index.json
    pipeline_class: str = ""
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    num_inference_steps: int = 50
    guidance_scale: float = 9.0
    negative_prompt: str = ""
    #: "pipeline" = the pipeline's encode_prompt; otherwise an evalkit text encoder name (minilm, t5, ...)
    text_encoder: str = "pipeline"
    text_encoder_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: "generators": one call with a list of per-sample generators; "loop": one call per sample
    seeding: Literal["generators", "loop"] = "generators"
    #: samples per pipeline call (0 = the whole request)
    max_batch: int = 0
    #: further keyword arguments of the pipeline call (e.g. eta)
    call_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if self.max_batch < 0:
            raise ValueError(f"max_batch must be >= 0, got {self.max_batch}")
        reserved = {"prompt", "prompt_embeds", "negative_prompt_embeds", "generator", "num_frames", "height",
                    "width", "output_type", "return_dict"} & set(self.call_kwargs)
        if reserved:
            raise ValueError(f"call_kwargs may not set {sorted(reserved)}: the adapter sets them from the request")


def load_pipeline(config: DiffusersConfig) -> Any:
    """Open the pipeline directory offline (``local_files_only=True``); errors name the directory."""
    import diffusers

    if not config.path:
        raise ConfigError("expected the local directory of a diffusers pipeline", path="generator.params.path")
    path = Path(config.path).expanduser()
    if not (path / "model_index.json").is_file():
        raise WeightsError(f"diffusers pipeline: {path / 'model_index.json'} not found; expected a directory written "
                           "by pipeline.save_pretrained(dir) (or a downloaded snapshot of a hub repository)")
    cls = diffusers.DiffusionPipeline
    if config.pipeline_class:
        cls = getattr(diffusers, config.pipeline_class, None)
        if cls is None:
            raise ConfigError(f"diffusers has no class '{config.pipeline_class}'", path="generator.params.pipeline_class")
    # diffusers renamed torch_dtype to dtype (the old name warns from 0.36 on)
    from diffusers.utils import deprecation_utils

    dtype_key = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    verbosity = diffusers.logging.get_verbosity()
    diffusers.logging.set_verbosity_error()  # no progress chatter about each component
    try:
        return cls.from_pretrained(str(path), local_files_only=True, **{dtype_key: _DTYPES[config.torch_dtype]})
    except (OSError, ValueError) as exc:
        raise WeightsError(f"diffusers pipeline: cannot load {path}: {exc}") from None
    finally:
        diffusers.logging.set_verbosity(verbosity)


def _frames_to_uint8(frames: Any, name: str) -> torch.Tensor:
    """Pipeline output frames -> uint8 (B, T, H, W, 3); float input is in [0, 1]."""
    if isinstance(frames, list):
        if frames and isinstance(frames[0], list):  # list of lists of PIL images
            frames = np.stack([np.stack([np.asarray(im.convert("RGB")) for im in video]) for video in frames])
        else:
            frames = np.stack([np.asarray(v) for v in frames])
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu()
        if frames.ndim == 5 and frames.shape[2] in (1, 3) and frames.shape[-1] not in (1, 3):
            frames = frames.permute(0, 1, 3, 4, 2)  # "pt" layout (B, T, C, H, W)
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise InputError(f"{name}: expected frames (B, T, H, W, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return torch.from_numpy(frames.copy())
    return torch.from_numpy((frames.astype(np.float32) * 255).round().clip(0, 255).astype(np.uint8))


@GENERATORS.register("diffusers")
class DiffusersGenerator(Generator):
    """A diffusers text-to-video pipeline behind the evalkit Generator contract."""

    Config = DiffusersConfig

    def __init__(self, config: DiffusersConfig | None = None, *, pipeline: Any = None):
        super().__init__(config)
        self.pipe = pipeline if pipeline is not None else load_pipeline(self.config)
        self._params = inspect.signature(self.pipe.__call__).parameters
        name = type(self.pipe).__name__
        if "prompt_embeds" not in self._params:
            raise InputError(f"diffusers pipeline {name}: its __call__ does not accept prompt_embeds; the diffusers "
                             "adapter needs a text-to-video pipeline that takes prompt embeddings")
        if "num_frames" not in self._params:
            raise InputError(f"diffusers pipeline {name}: its __call__ has no num_frames argument (not a video pipeline?)")
        if self.config.seeding == "generators" and "generator" not in self._params:
            raise InputError(f"diffusers pipeline {name}: its __call__ takes no generator, so seeds cannot be honoured")
        unknown = set(self.config.call_kwargs) - set(self._params)
        if unknown:
            raise ConfigError(f"{name}.__call__ has no argument(s) {sorted(unknown)}", path="generator.params.call_kwargs")
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(disable=True)
        self._encoder = None
        if self.config.text_encoder != "pipeline":
            from evalkit.generators.text_encoders import build_text_encoder

            self._encoder = build_text_encoder(self.config.text_encoder, self.config.text_encoder_params)
        elif not hasattr(self.pipe, "encode_prompt") or getattr(self.pipe, "text_encoder", None) is None:
            raise ConfigError(f"diffusers pipeline {name} has no text encoder of its own; set text_encoder to an "
                              "evalkit encoder (e.g. minilm) whose width matches the denoiser", path="generator.params.text_encoder")
        self._rows = 0
        denoiser = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        if isinstance(denoiser, torch.nn.Module):
            denoiser.register_forward_pre_hook(self._count, with_kwargs=True)

    @classmethod
    def test_instance(cls, workdir: Path) -> DiffusersGenerator:
        """A randomly initialised tiny TextToVideoSD pipeline saved under ``workdir`` (for contract tests)."""
        path = Path(workdir) / "tiny-t2v"
        tiny_text_to_video_pipeline().save_pretrained(str(path))
        return cls(DiffusersConfig(path=str(path), num_inference_steps=2, guidance_scale=4.0))

    # ----------------------------------------------------------------------------------------------

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        if isinstance(sample, torch.Tensor):
            self._rows += sample.shape[0]

    def to(self, device: str | torch.device) -> DiffusersGenerator:
        super().to(device)
        self.pipe.to(self.device)
        return self

    def _embed(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive and negative embeddings (B, L, D), each prompt encoded alone (batch-independent)."""
        if self._encoder is not None:
            pos = self._encoder.encode(prompts).tokens
            neg = self._encoder.encode([self.config.negative_prompt] * len(prompts)).tokens
            expected = getattr(getattr(getattr(self.pipe, "unet", None), "config", None), "cross_attention_dim", None)
            if expected is not None and pos.shape[-1] != expected:
                raise ConfigError(f"text encoder {self.config.text_encoder} gives {pos.shape[-1]}-d tokens, the "
                                  f"pipeline's unet expects cross_attention_dim={expected}", path="generator.params.text_encoder")
            dtype = _DTYPES[self.config.torch_dtype]
            return pos.to(self.device, dtype), neg.to(self.device, dtype)
        params = inspect.signature(self.pipe.encode_prompt).parameters
        pos, neg = [], []
        for prompt in prompts:
            kwargs = {"prompt": prompt, "device": self.device, "do_classifier_free_guidance": True,
                      "negative_prompt": self.config.negative_prompt, "num_images_per_prompt": 1,
                      "num_videos_per_prompt": 1}
            out = self.pipe.encode_prompt(**{k: v for k, v in kwargs.items() if k in params})
            if not (isinstance(out, tuple) and len(out) >= 2 and all(isinstance(t, torch.Tensor) for t in out[:2])):
                raise InputError(f"{type(self.pipe).__name__}.encode_prompt did not return (prompt_embeds, "
                                 "negative_prompt_embeds)")
            pos.append(out[0])
            neg.append(out[1])
        return torch.cat(pos), torch.cat(neg)

    def _check_spec(self, spec: VideoSpec) -> None:
        factor = int(getattr(self.pipe, "vae_scale_factor", 1) or 1)
        unet_levels = getattr(getattr(getattr(self.pipe, "unet", None), "config", None), "block_out_channels", None)
        if unet_levels:
            factor *= 2 ** (len(unet_levels) - 1)
        if spec.height % factor or spec.width % factor:
            raise InputError(f"diffusers pipeline {type(self.pipe).__name__}: height and width must be multiples of "
                             f"{factor} (VAE factor x U-Net downsampling), got {spec.height}x{spec.width}")

    def _call(self, pos: torch.Tensor, neg: torch.Tensor, seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        gens = [torch_generator(s) for s in seeds]  # CPU generators: the same noise on every device
        kwargs: dict[str, Any] = dict(
            prompt_embeds=pos, negative_prompt_embeds=neg, num_frames=spec.frames, height=spec.height,
            width=spec.width, num_inference_steps=self.config.num_inference_steps,
            guidance_scale=self.config.guidance_scale, generator=gens if len(gens) > 1 else gens[0],
            output_type="np", **self.config.call_kwargs,
        )
        for fps_name in ("fps", "frame_rate"):
            if fps_name in self._params and fps_name not in self.config.call_kwargs:
                kwargs[fps_name] = spec.fps
        kwargs = {k: v for k, v in kwargs.items() if k in self._params}
        with torch.inference_mode():
            out = self.pipe(**kwargs)
        frames = out.frames if hasattr(out, "frames") else out[0]
        return _frames_to_uint8(frames, f"{type(self.pipe).__name__} output")

    def _generate(self, prompts: list[str], seeds: list[int], spec: VideoSpec) -> torch.Tensor:
        self._check_spec(spec)
        if not prompts:
            return torch.zeros((0, *spec.shape), dtype=torch.uint8)
        pos, neg = self._embed(prompts)
        step = 1 if self.config.seeding == "loop" else (self.config.max_batch or len(prompts))
        self._rows = 0
        videos = [self._call(pos[i:i + step], neg[i:i + step], seeds[i:i + step], spec)
                  for i in range(0, len(prompts), step)]
        self.last_nfe = self._rows / len(prompts)
        return torch.cat(videos)


# --------------------------------------------------------------------------------------------------
# a randomly initialised pipeline in the real format, for tests and examples (no download)


def _toy_clip_tokenizer(directory: Path) -> Any:
    """A character-level CLIP BPE tokenizer (vocab.json + merges.txt) written to ``directory``."""
    import json

    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=16,
                         unk_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_text_to_video_pipeline(seed: int = 0) -> Any:
    """TextToVideoSDPipeline with a tiny random UNet3DConditionModel, VAE and CLIP text model."""
    import tempfile
    import warnings

    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 8), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8, attention_head_dim=4, norm_num_groups=2,
    )
    vae = AutoencoderKL(block_out_channels=(8,), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=2, sample_size=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2, vocab_size=100,
        max_position_embeddings=16, projection_dim=8, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _toy_clip_tokenizer(Path(tmp))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                     scheduler=scheduler)
