"""Generator checkpoints shipped in the package, registered by name in the weights registry.

A generator's ``checkpoint`` field takes a file path or one of these names, so configs such as the
quickstart work from any directory and a retrained file is noticed by its digest (`evalkit weights
verify`). The files are the EMA weights exported by ``evalkit train`` from ``configs/train/``; their
training cost is in the file metadata and in docs/training.md.
"""

from __future__ import annotations

from pathlib import Path

from evalkit import weights as weights_registry

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: name -> (file, SHA-256, training configs in the order they run, description)
SHIPPED: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "fit-tiny-shapes": (
        "fit-tiny-shapes.safetensors",
        "92756425c825cce78cad14b7a58ef3b6fcbb21950a7861b21db54fd9218b0052",
        ("configs/train/fit-tiny-shapes.yaml", "configs/train/fit-tiny-shapes-continue.yaml",
         "configs/train/fit-tiny-shapes-continue-2.yaml", "configs/train/fit-tiny-shapes-continue-3.yaml",
         "configs/train/fit-tiny-shapes-continue-4.yaml", "configs/train/fit-tiny-shapes-continue-5.yaml"),
        "Snap Video FIT base stage (fit-tiny), 16x36x64 shapes clips",
    ),
    "fit-upsampler-tiny-shapes": (
        "fit-upsampler-tiny-shapes.safetensors",
        "2836b3def43019a415e6cdfda921e446e16c4613e79d01c9b0dac2c5321e51a7",
        ("configs/train/fit-upsampler-tiny-shapes-residual.yaml",),
        "Snap Video FIT upsampler stage (fit-upsampler-tiny, residual over bilinear), 36x64 -> 72x128 shapes clips",
    ),
    "unet-tiny-shapes": (
        "unet-tiny-shapes.safetensors",
        "68ecefd12f217376a326bb7a977fcfdb67ba796c7837ee4be1770bd41266bd8b",
        ("configs/train/unet-tiny-shapes.yaml",),
        "video U-Net with temporal attention (unet-tiny), 16x36x64 shapes clips",
    ),
}

for _name, (_file, _sha, _configs, _description) in SHIPPED.items():
    _rebuild = " && ".join(f"evalkit train {c}" for c in _configs)
    weights_registry.register_weights(
        weights_registry.WeightEntry(
            name=_name,
            filename=_file,
            url=f"shipped in the package (evalkit/generators/weights/{_file}); rebuild with `{_rebuild}`",
            digest=_sha,
            digest_kind="sha256-prefix",
            description=_description,
            packaged_path=str(WEIGHTS_DIR / _file),
        )
    )


def checkpoint_path(value: str | Path) -> Path:
    """A checkpoint field's file: an existing path as given, else a registered weights name resolved."""
    path = Path(value)
    name = str(value).strip().replace("_", "-").lower()
    if path.is_file() or name not in weights_registry.WEIGHTS:
        return path  # a missing path is reported by the caller, with what it expected
    resolved = weights_registry.resolve(name)
    return resolved.path if resolved.path is not None else path
