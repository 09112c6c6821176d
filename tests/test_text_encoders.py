"""Text encoders: shape/mask contract, determinism, cache, and agreement with the reference libraries."""

import os
import subprocess
import sys

import pytest
import torch

from evalkit.errors import ConfigError, InputError, WeightsError
from evalkit.generators.text_encoders import (
    MINILM_SHA256,
    TEXT_ENCODERS,
    HashedTextEncoder,
    build_text_encoder,
    evalkit_home,
)

PROMPTS = ["a red circle moving left", "A blue square, spinning!", ""]


def _contract(enc, prompts=PROMPTS):
    out = enc.encode(prompts)
    tokens, mask = out  # unpacks as a pair
    assert tokens.shape == (len(prompts), enc.max_length, enc.dim) and tokens.dtype == torch.float32
    assert mask.shape == (len(prompts), enc.max_length) and mask.dtype == torch.bool
    assert mask.any(1).all()  # every prompt, even "", has at least one valid token
    assert torch.isfinite(tokens).all()
    return out


def test_registry_names():
    assert {"hashed", "minilm", "t5", "clip"} <= set(TEXT_ENCODERS.names())
    with pytest.raises(ConfigError, match="hashed"):
        build_text_encoder("hashed", {"dimension": 8})
    with pytest.raises(ConfigError, match="dim"):
        build_text_encoder("hashed", {"dim": 7})


def test_hashed_contract_and_content():
    enc = HashedTextEncoder(dim=16, max_length=6)
    tokens, mask = _contract(enc)
    assert mask.sum(1).tolist() == [6, 6, 1]  # 1 start + 5 words; 1 + 6 truncated to 6; start only
    # the same word gets the same vector (up to its position); case and punctuation are normalised
    assert enc.token_ids("A RED circle")[1:] == enc.token_ids("a red circle")[1:]
    assert enc.token_ids("red")[1] == enc.token_ids("blue red")[2]
    assert not torch.equal(tokens[0], tokens[1])
    assert torch.equal(tokens[0, ~mask[0]], torch.zeros_like(tokens[0, ~mask[0]]))
    with pytest.raises(InputError):
        enc.encode("a single string")


def test_hashed_is_identical_across_processes():
    code = ("import torch; from evalkit.generators.text_encoders import HashedTextEncoder as H;"
            "t = H(dim=8, max_length=5, cache=False).encode(['a red circle']).tokens;"
            "print(','.join(repr(v) for v in t.flatten().tolist()))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own hash() would differ here
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    here = HashedTextEncoder(dim=8, max_length=5).encode(["a red circle"]).tokens
    assert out.strip() == ",".join(repr(v) for v in here.flatten().tolist())


def test_memory_and_disk_cache(tmp_path):
    calls = []

    class Counting(HashedTextEncoder):
        def _encode(self, prompts):
            calls.append(list(prompts))
            return super()._encode(prompts)

    enc = Counting(dim=8, disk_cache=True)
    first = enc.encode(["b", "a", "b"])
    assert calls == [["b", "a"]]  # duplicates encoded once
    again = enc.encode(["a", "c"])
    assert calls[-1] == ["c"]
    assert torch.equal(again.tokens[0], first.tokens[1])
    path = enc.cache_path("a")
    assert path.is_file() and str(path).startswith(str(evalkit_home() / "cache" / "text" / enc.fingerprint))
    fresh = Counting(dim=8, disk_cache=True)
    calls.clear()
    assert torch.equal(fresh.encode(["a", "b"]).tokens, first.tokens[[1, 0]])
    assert calls == []  # served from disk
    path.write_bytes(b"damaged")
    fresh2 = Counting(dim=8, disk_cache=True)
    fresh2.encode(["a"])
    assert calls == [["a"]]  # a damaged file is recomputed
    assert HashedTextEncoder(dim=8).fingerprint != HashedTextEncoder(dim=16).fingerprint


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm", {"cache": False})


def test_minilm_bundled_and_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    tokens, mask = _contract(minilm)
    assert minilm.dim == 384 and minilm.max_length == 32
    assert minilm.settings()["files"]["model.safetensors"] == MINILM_SHA256["model.safetensors"]
    st = SentenceTransformer(str(minilm.path), device="cpu")
    ref = st.encode(PROMPTS[:2], convert_to_tensor=True, normalize_embeddings=False)
    ours = minilm.encode(PROMPTS[:2]).pooled()
    # sentence-transformers pools the same token states with a masked mean, then L2-normalises
    torch.testing.assert_close(torch.nn.functional.normalize(ours, dim=-1), ref, rtol=1e-4, atol=1e-5)
    ref_tokens = st.encode(PROMPTS[:1], output_value="token_embeddings")[0]
    n = int(mask[0].sum())
    torch.testing.assert_close(tokens[0, :n], ref_tokens.float(), rtol=1e-4, atol=1e-5)


def test_minilm_batch_independent(minilm):
    alone = minilm.encode([PROMPTS[1]]).tokens[0]
    batched = minilm.encode(PROMPTS).tokens[1]
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-5)


def _tiny_vocab():
    words = "a red blue circle square moving left spinning the".split()
    return words, list("abcdefghijklmnopqrstuvwxyz")


def _save_t5(path, seed=0):
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    words, chars = _tiny_vocab()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0 - i) for i, w in enumerate(words)]
    vocab += [(c, -20.0) for c in chars]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    torch.manual_seed(seed)
    model = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model.eval(), tok


def _save_clip(path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words, chars = _tiny_vocab()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for w in words + chars:
        vocab[w + "</w>"] = len(vocab)
    for c in chars:
        vocab[c] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=24, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1)
    model = CLIPTextModel(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model.eval(), tok


def test_t5_from_local_directory(tmp_path):
    model, tok = _save_t5(tmp_path / "t5")
    enc = build_text_encoder("t5", {"path": str(tmp_path / "t5"), "max_length": 12})
    tokens, mask = _contract(enc)
    assert enc.dim == 32
    batch = tok(PROMPTS, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(tokens, ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(mask, batch["attention_mask"].bool())
    # other weights, other fingerprint
    _save_t5(tmp_path / "t5b", seed=1)
    other = build_text_encoder("t5", {"path": str(tmp_path / "t5b"), "max_length": 12})
    assert other.fingerprint != enc.fingerprint
    assert not torch.allclose(other.encode(PROMPTS).tokens, tokens)


def test_clip_from_local_directory(tmp_path):
    model, tok = _save_clip(tmp_path / "clip")
    enc = build_text_encoder("clip", {"path": str(tmp_path / "clip"), "max_length": 20})
    tokens, mask = _contract(enc)
    # The reference is the directory as transformers reloads it: this hand-built BPE vocabulary without
    # merges does not survive save/load unchanged (single-letter words), and the encoder reads the directory.
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tmp_path / "clip"))
    batch = tok(PROMPTS, padding="max_length", max_length=20, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(tokens[mask], ref[batch["attention_mask"].bool()], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="max_length"):
        build_text_encoder("clip", {"path": str(tmp_path / "clip"), "max_length": 77})


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_text_encoder("t5", {"path": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="tokenizer"):
        build_text_encoder("clip", {"path": str(tmp_path / "empty")})
