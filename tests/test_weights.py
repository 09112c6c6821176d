"""Weights registry: missing-file message, add/verify with both digest kinds, --force, safe loading."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
import torch

from evalkit import weights as W
from evalkit.cli import main
from evalkit.errors import WeightsError


@pytest.fixture
def entry(tmp_path):
    """A registered entry whose digest is the SHA-256 prefix of a file the test writes."""
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(4.0)}, good)
    prefix = hashlib.sha256(good.read_bytes()).hexdigest()[:8]
    e = W.WeightEntry("test-net", "test-net-abc.pth", "https://example.org/test-net-abc.pth", prefix,
                      "sha256-prefix", "a test network")
    W.register_weights(e)
    yield e, good
    W.WEIGHTS.pop("test-net", None)


def test_section_8_entries_are_registered():
    for name in ("pytorch-fid-inception", "inception-torchscript", "i3d-torchscript", "i3d-pretrained-400",
                 "c3d-ucf101", "clip-vit-b-32-openai", "clip-vit-b-16-openai", "clip-vit-l-14-openai"):
        assert W.get_entry(name).url.startswith("https://")
    assert W.get_entry("i3d_pretrained_400") is W.get_entry("i3d-pretrained-400")
    assert W.get_entry("pytorch-fid-inception").digest == "6726825d"


def test_missing_file_message_and_random_fallback(entry):
    e, _ = entry
    with pytest.raises(WeightsError) as err:
        W.resolve("test-net")
    message = str(err.value)
    assert e.filename in message and e.url in message and "evalkit weights add test-net" in message
    resolved = W.resolve("test-net", allow_random=True)
    assert resolved.path is None and resolved.comparable is False


def test_add_verifies_and_resolves(entry):
    e, good = entry
    result = W.add("test-net", good)
    assert result.status == "ok" and result.path == W.weights_dir() / e.filename
    resolved = W.resolve("test-net")
    assert resolved.comparable and resolved.digest == "sha256:" + hashlib.sha256(good.read_bytes()).hexdigest()
    assert [r.status for r in W.verify("test-net")] == ["ok"]


def test_mismatch_needs_force_and_marks_not_comparable(entry, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(4)}, bad)
    with pytest.raises(WeightsError, match="--force"):
        W.add("test-net", bad)
    assert W.add("test-net", bad, force=True).status == "forced"
    assert W.resolve("test-net").comparable is False
    assert [r.status for r in W.verify("test-net")] == ["forced"]


def test_hand_placed_file_with_wrong_digest_is_refused(entry, tmp_path):
    e, _ = entry
    W.weights_dir().mkdir(parents=True, exist_ok=True)
    (W.weights_dir() / e.filename).write_bytes(b"something else")
    with pytest.raises(WeightsError, match="digest does not match"):
        W.resolve("test-net")


def test_git_blob_digest_matches_git_hash_object(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"i3d weights stand-in\n" * 100)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert W.git_blob_sha1(path) == expected
    e = W.WeightEntry("test-blob", "blob.bin", "https://example.org/blob.bin", expected, "git-blob-sha1", "blob")
    assert W.matches_entry(e, path) is True
    path.write_bytes(b"changed")
    assert W.matches_entry(e, path) is False


def test_loading_never_unpickles_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": WeightsError("x")}, path)
    with pytest.raises(WeightsError, match="cannot load weights"):
        W.load_state_dict(path)
    sd = tmp_path / "ok.safetensors"
    from safetensors.torch import save_file

    save_file({"module.a": torch.ones(2)}, str(sd))
    assert list(W.load_state_dict(sd)) == ["a"]


def test_overrides_and_cli(entry, tmp_path, capsys):
    e, good = entry
    with W.overrides({"test-net": good}):
        assert W.resolve("test-net").path == good
    with pytest.raises(WeightsError):
        W.resolve("test-net")
    assert main(["weights", "add", "test-net", str(good)]) == 0
    assert "digest verified" in capsys.readouterr().out
    assert main(["weights", "verify", "test-net"]) == 0
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "test-net" in listing and "pytorch-fid-inception" in listing and "not installed" in listing
    assert main(["weights", "add", "test-net", str(tmp_path / "nope.pth")]) == 2
    assert "nope.pth" in capsys.readouterr().err


def test_shipped_checkpoints_are_listed_and_verified(capsys):
    assert main(["weights", "verify", "fit-upsampler-tiny-shapes"]) == 0
    assert "packaged" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "fit-tiny-shapes" in listing and "unet-tiny-shapes" in listing


def test_packaged_file_with_wrong_digest_is_a_mismatch(tmp_path, capsys):
    packaged = tmp_path / "retrained.safetensors"
    packaged.write_bytes(b"not the registered file")
    W.register_weights(W.WeightEntry("test-packaged", "test-packaged.safetensors", "shipped", "00ff00ff",
                                     "sha256-prefix", "a packaged test file", packaged_path=str(packaged)))
    try:
        [result] = W.verify("test-packaged")
        assert result.status == "mismatch" and "00ff00ff" in result.detail
        assert main(["weights", "verify", "test-packaged"]) == 2
        assert "test-packaged" in capsys.readouterr().out
    finally:
        W.WEIGHTS.pop("test-packaged", None)
