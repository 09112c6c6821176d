"""Train the shapes detectors and write them as safetensors files with their held-out accuracy.

    python -m evalkit.datasets.shapes.train_detectors --out datasets/shapes/weights --seed 0

Three files: ``shapes_video.safetensors`` (``VideoNet``: shapes-FVD features, shapes-IS label
logits), ``shapes_frame.safetensors`` (``FrameNet``: shapes-FID features) and
``shapes_clip.safetensors`` (``ClipModel``: shapes-CLIPSIM). Every training clip is rendered
fresh from the seed stream ``shapes/detectors/train``; the held-out clips come from
``shapes/detectors/heldout`` (both distinct from the protocol's streams). Training runs on the CPU
with a fixed thread count; the metadata of each file records the settings and the held-out scores.
The CLIPSIM video tower starts from the trained ``VideoNet`` trunk, which stays frozen, so only the
projection head and the caption encoder are trained (by a symmetric InfoNCE loss whose targets
count every clip with the same caption as a positive).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from evalkit.datasets.shapes.attributes import ShapeAttributes, sample_attributes
from evalkit.datasets.shapes.captions import caption, vocabulary
from evalkit.datasets.shapes.networks import (
    FILES,
    FORMAT,
    FRAME_HEADS,
    VIDEO_HEADS,
    ClipModel,
    FrameNet,
    VideoNet,
)
from evalkit.datasets.shapes.render import render_batch
from evalkit.seeding import numpy_rng, sample_seed
from evalkit.video import VideoSpec

#: the protocol's clip format, which the detectors are trained on
TRAIN_SPEC = VideoSpec(frames=16, height=36, width=64, fps=24.0)


@dataclasses.dataclass
class TrainSettings:
    seed: int = 0
    #: intra-op threads; the thread count changes float summation order, so the shipped files use 1
    threads: int = 1
    batch_size: int = 32
    video_steps: int = 600
    frame_steps: int = 300
    #: clips whose frozen trunk features train the CLIPSIM heads
    clip_pool: int = 4096
    clip_steps: int = 2000
    clip_batch: int = 256
    lr: float = 2e-3
    heldout: int = 1024


def draw(seed: int, stream: str, start: int, n: int) -> tuple[list[ShapeAttributes], torch.Tensor]:
    """Clips ``start..start+n`` of a seed stream (attributes and uint8 videos)."""
    attrs, seeds = [], []
    for i in range(start, start + n):
        rng = numpy_rng(sample_seed(seed, i, f"shapes/detectors/{stream}"))
        attrs.append(sample_attributes(rng))
        seeds.append(int(rng.integers(0, 2**63 - 1)))
    return attrs, render_batch(attrs, seeds, TRAIN_SPEC)


def targets(attrs: list[ShapeAttributes], heads: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
    out = {}
    for head, classes in heads.items():
        index = {c: k for k, c in enumerate(classes)}
        out[head] = torch.tensor([index[getattr(a, head)] for a in attrs], dtype=torch.long)
    return out


def _cosine_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int, warmup: int = 50) -> None:
    lr = base * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total))
    for group in opt.param_groups:
        group["lr"] = lr


def _train_classifier(
    net: torch.nn.Module,
    heads: dict[str, tuple[str, ...]],
    steps: int,
    settings: TrainSettings,
    stream: str,
    pick: Callable[[torch.Tensor, np.random.Generator], tuple[torch.Tensor, int]],
    log: Callable[[str], None],
) -> None:
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    rng = np.random.default_rng(settings.seed)
    net.train()
    for step in range(steps):
        attrs, videos = draw(settings.seed, stream, step * settings.batch_size, settings.batch_size)
        videos, repeat = pick(videos, rng)
        tgt = targets(attrs, heads)
        out = net(videos)
        loss = sum(F.cross_entropy(out[h], tgt[h].repeat_interleave(repeat)) for h in heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _cosine_lr(opt, settings.lr, step, steps)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"  step {step:5d}/{steps} loss {loss.item():.4f}")
    net.eval()


@torch.no_grad()
def evaluate_classifier(net: torch.nn.Module, heads: dict[str, tuple[str, ...]], attrs: list[ShapeAttributes],
                        videos: torch.Tensor, per_frame: bool) -> dict[str, float]:
    """Held-out accuracy of each head (per frame for the frame network)."""
    tgt = targets(attrs, heads)
    correct = {h: 0 for h in heads}
    total = 0
    for start in range(0, len(attrs), 128):
        out = net(videos[start : start + 128])
        reps = videos.shape[1] if per_frame else 1
        for h in heads:
            want = tgt[h][start : start + 128].repeat_interleave(reps)
            correct[h] += int((out[h].argmax(-1) == want).sum())
        total += out[next(iter(heads))].shape[0]
    return {h: correct[h] / total for h in heads}


def _multi_positive_infonce(v: torch.Tensor, t: torch.Tensor, caps: list[str], scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same caption counts as a positive."""
    ids = {c: k for k, c in enumerate(dict.fromkeys(caps))}
    label = torch.tensor([ids[c] for c in caps])
    pos = (label[:, None] == label[None, :]).float()
    target = pos / pos.sum(1, keepdim=True)
    logits = scale.exp().clamp(max=100) * v @ t.T
    loss_v = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(target * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (loss_v + loss_t) / 2


@torch.no_grad()
def evaluate_clip(model: ClipModel, attrs: list[ShapeAttributes], videos: torch.Tensor) -> dict[str, float]:
    """Retrieval among the held-out set: a hit when the top item has the query's exact caption."""
    caps = [caption(a) for a in attrs]
    v = torch.cat([model.encode_video(videos[s : s + 128]) for s in range(0, len(caps), 128)])
    t = model.encode_text(caps)
    sim = v @ t.T
    same = torch.tensor([[a == b for b in caps] for a in caps])
    v2t = float(same[torch.arange(len(caps)), sim.argmax(1)].float().mean())
    t2v = float(same[torch.arange(len(caps)), sim.argmax(0)].float().mean())
    uniq = list(dict.fromkeys(caps))
    tu = model.encode_text(uniq)
    pick = (v @ tu.T).argmax(1)
    v2t_unique = float(np.mean([uniq[int(k)] == c for k, c in zip(pick, caps, strict=True)]))
    diag = sim.diagonal()
    off = sim[~same]
    return {
        "video_to_text_r1": v2t,
        "text_to_video_r1": t2v,
        "video_to_caption_set_r1": v2t_unique,
        "caption_set_size": float(len(uniq)),
        "cosine_matched_mean": float(diag.mean()),
        "cosine_unmatched_mean": float(off.mean()),
    }


def _save(state: dict[str, torch.Tensor], path: Path, meta: dict[str, object]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata={k: json.dumps(v, sort_keys=True) for k, v in meta.items()})
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_all(out: Path, settings: TrainSettings, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Train the three networks and write them to ``out``; returns the metadata of each file."""
    torch.set_num_threads(settings.threads)
    common = {"format": FORMAT, "settings": dataclasses.asdict(settings), "spec": dataclasses.asdict(TRAIN_SPEC),
              "torch": torch.__version__}
    held_attrs, held_videos = draw(settings.seed, "heldout", 0, settings.heldout)
    results: dict[str, dict] = {}

    t0 = time.time()
    log("video network (shapes-FVD features, shapes-IS labels)")
    torch.manual_seed(settings.seed)
    video = VideoNet()
    _train_classifier(video, VIDEO_HEADS, settings.video_steps, settings, "train", lambda v, r: (v, 1), log)
    acc = evaluate_classifier(video, VIDEO_HEADS, held_attrs, held_videos, per_frame=False)
    log(f"  held-out accuracy {acc} ({time.time() - t0:.0f} s)")
    meta = {**common, "architecture": "VideoNet", "heads": VIDEO_HEADS, "heldout_accuracy": acc}
    results["video"] = {**meta, "sha256": _save(video.state_dict(), out / FILES["video"], meta)}

    t0 = time.time()
    log("frame network (shapes-FID features)")
    torch.manual_seed(settings.seed + 1)
    frame = FrameNet()

    def frames_of(videos: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        k = 4  # random frames per clip, kept as 4-frame "videos" so the network sees B*4 frames
        idx = torch.as_tensor(np.sort(rng.choice(videos.shape[1], size=k, replace=False)))
        return videos[:, idx], k

    _train_classifier(frame, FRAME_HEADS, settings.frame_steps, settings, "train-frames", frames_of, log)
    acc = evaluate_classifier(frame, FRAME_HEADS, held_attrs, held_videos, per_frame=True)
    log(f"  held-out per-frame accuracy {acc} ({time.time() - t0:.0f} s)")
    meta = {**common, "architecture": "FrameNet", "heads": FRAME_HEADS, "heldout_accuracy": acc}
    results["frame"] = {**meta, "sha256": _save(frame.state_dict(), out / FILES["frame"], meta)}

    t0 = time.time()
    log("caption-video model (shapes-CLIPSIM)")
    torch.manual_seed(settings.seed + 2)
    vocab = vocabulary()
    clip = ClipModel(vocab)
    clip.video.load_state_dict(video.state_dict())
    clip.video.requires_grad_(False)
    clip.video.eval()
    pool_attrs, feats = [], []
    with torch.no_grad():
        for start in range(0, settings.clip_pool, 256):
            attrs, videos = draw(settings.seed, "train-clip", start, min(256, settings.clip_pool - start))
            pool_attrs += attrs
            feats.append(clip.video.features(videos))
    feats_t = torch.cat(feats)
    caps = [caption(a) for a in pool_attrs]
    params = [p for n, p in clip.named_parameters() if not n.startswith("video.")]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(settings.seed)
    for step in range(settings.clip_steps):
        idx = torch.randperm(len(caps), generator=gen)[: settings.clip_batch]
        v = F.normalize(clip.video_proj(feats_t[idx]), dim=-1)
        t = clip.encode_text([caps[int(i)] for i in idx])
        loss = _multi_positive_infonce(v, t, [caps[int(i)] for i in idx], clip.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _cosine_lr(opt, settings.lr, step, settings.clip_steps)
        opt.step()
        if step % 200 == 0 or step == settings.clip_steps - 1:
            log(f"  step {step:5d}/{settings.clip_steps} loss {loss.item():.4f}")
    clip.eval()
    scores = evaluate_clip(clip, held_attrs, held_videos)
    log(f"  held-out retrieval {scores} ({time.time() - t0:.0f} s)")
    meta = {**common, "architecture": "ClipModel", "vocabulary": vocab, "heldout_retrieval": scores}
    results["clip"] = {**meta, "sha256": _save(clip.state_dict(), out / FILES["clip"], meta)}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=TrainSettings.threads)
    parser.add_argument("--video-steps", type=int, default=TrainSettings.video_steps)
    parser.add_argument("--frame-steps", type=int, default=TrainSettings.frame_steps)
    parser.add_argument("--clip-steps", type=int, default=TrainSettings.clip_steps)
    parser.add_argument("--report", type=Path, default=None, help="also write the metadata as JSON here")
    args = parser.parse_args(argv)
    settings = TrainSettings(seed=args.seed, threads=args.threads, video_steps=args.video_steps,
                             frame_steps=args.frame_steps, clip_steps=args.clip_steps)
    start = time.time()
    results = train_all(args.out, settings)
    print(f"done in {time.time() - start:.0f} s; sha256 of the files:")
    for key, meta in results.items():
        print(f"  {FILES[key]}: {meta['sha256']}")
    if args.report is not None:
        args.report.write_text(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
