"""Trainer: exact resume, DDP code path, run-directory outputs, export, the train command, shapes batches."""

import datetime
import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from evalkit.config import from_dict, load_config
from evalkit.errors import RunDirError
from evalkit.generators.checkpoints import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    training_cost,
)
from evalkit.generators.trainer import (
    TRAINABLE_MODELS,
    TRAINING_SOURCES,
    Batch,
    ShapesSource,
    TrainConfig,
    Trainer,
    export_from_checkpoint,
    step_items,
)
from evalkit.video import VideoSpec

CAPTIONS = ["a red circle moving left", "a blue square", "a green star spinning", "a cross"]


class ToyModel(nn.Module):
    """Predicts the noise added to each pixel from the noisy pixel, the pooled text and 1/fps; has
    dropout so the global RNG matters as well as the loss generator."""

    def __init__(self, text_dim: int, hidden: int = 16, zero_output: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 + text_dim + 1, hidden), nn.SiLU(), nn.Dropout(0.2),
                                 nn.Linear(hidden, 3))
        if zero_output:     # the zero-initialised output layer of ADM-style networks
            nn.init.zeros_(self.net[3].weight)

    def loss(self, videos, text_tokens, text_mask, fps, is_image, generator):
        x = videos.float() / 127.5 - 1
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        w = text_mask.float().unsqueeze(-1)
        pooled = (text_tokens * w).sum(1) / w.sum(1)
        interval = torch.where(is_image, torch.zeros_like(fps), 1 / fps).float()
        cond = torch.cat([pooled, interval[:, None]], 1)[:, None, None, None].expand(*x.shape[:4], -1)
        pred = self.net(torch.cat([x + noise, cond], -1))
        return ((pred - noise) ** 2).mean()

    def no_weight_decay(self) -> set[str]:
        return {"net.0.weight"}     # stands in for an embedding table


class ToySource:
    def __init__(self, spec: VideoSpec, seed: int, params: dict):
        self.spec, self.seed = spec, seed

    def clips(self, indices, images):
        vids = []
        for i in indices:
            g = torch.Generator().manual_seed(self.seed * 1000003 + 2 * i + int(images))
            v = torch.randint(0, 256, (self.spec.frames, self.spec.height, self.spec.width, 3), generator=g,
                              dtype=torch.uint8)
            vids.append(v[:1].expand_as(v).clone() if images else v)
        n = len(indices)
        fps = torch.full((n,), math.inf if images else self.spec.fps, dtype=torch.float64)
        return Batch(torch.stack(vids), [CAPTIONS[i % len(CAPTIONS)] for i in indices], fps,
                     torch.full((n,), images, dtype=torch.bool))


TRAINABLE_MODELS.add("toy-test", lambda params, text_dim, spec: ToyModel(text_dim, **params), overwrite=True)
TRAINING_SOURCES.add("toy-test", ToySource, overwrite=True)


def _config(**changes) -> TrainConfig:
    data = {
        "model": {"name": "toy-test", "params": {"hidden": 16}},
        "data": {"name": "toy-test", "frames": 2, "height": 4, "width": 4, "fps": 8.0},
        "text_encoder": {"name": "hashed", "params": {"dim": 8, "max_length": 6}},
        "optimizer": {"lr": 1e-2, "weight_decay": 0.01, "grad_clip": 1.0},
        "schedule": {"warmup_steps": 2, "final_lr_ratio": 0.1},
        "ema": {"half_life_samples": 16, "rampup_ratio": 0.5},
        "steps": 6, "batch_size": 4, "image_ratio": 0.5, "checkpoint_every": 2, "keep_checkpoints": 2,
        "log_every": 1, "seed": 3, "device": "cpu",
    }
    for key, value in changes.items():
        node = data
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return from_dict(TrainConfig, data)


def _states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_identical(tmp_path):
    straight = Trainer(_config(), tmp_path / "a", progress=False)
    res = straight.run()
    assert res.steps == 6 and res.samples == 24

    first = Trainer(_config(), tmp_path / "b", progress=False)
    first.run(stop_at=3)
    assert [s for s, _ in list_checkpoints(tmp_path / "b" / "checkpoints")] == [2, 3]
    second = Trainer(_config(), tmp_path / "b", progress=False)
    second.run(resume=True)

    _states_equal(straight.model.state_dict(), second.model.state_dict())
    _states_equal(straight.ema.module.state_dict(), second.ema.module.state_dict())
    for pa, pb in zip(straight.optimizer.state.values(), second.optimizer.state.values()):
        _states_equal(pa, pb)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in second.history]
    assert [r["step"] for r in second.history] == [1, 2, 3, 4, 5, 6]
    # training moved the weights and the EMA lags behind them
    init = Trainer(_config(), tmp_path / "c", progress=False).model.state_dict()
    assert not torch.equal(init["net.0.weight"], straight.model.state_dict()["net.0.weight"])
    assert not torch.equal(straight.ema.module.state_dict()["net.0.weight"], straight.model.state_dict()["net.0.weight"])


def test_run_directory_outputs_and_export(tmp_path):
    trainer = Trainer(_config(), tmp_path / "run", progress=False)
    trainer.run()
    run = tmp_path / "run"
    rows = (run / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,samples,loss,lr,grad_norm,ema_beta,wall_s" and len(rows) == 7
    assert (run / "loss.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["samples"] == 24
    assert json.loads((run / "train_config.json").read_text())["batch_size"] == 4
    # learning rate of each step follows the closed-form schedule
    lrs = [float(r.split(",")[3]) for r in rows[1:]]
    assert lrs == [trainer.schedule(s) for s in range(6)]
    # only the newest checkpoints are kept; they hold model, EMA, optimizer and RNG
    ckpts = list_checkpoints(run / "checkpoints")
    assert [s for s, _ in ckpts] == [4, 6]
    ck = load_checkpoint(ckpts[-1][1])
    assert ck.step == 6 and ck.ema is not None and ck.optimizer is not None and set(ck.rng) == {0}
    assert ck.meta["text_encoder_fingerprint"] == trainer.text_encoder.fingerprint
    # the shipped file holds the EMA weights only
    path = trainer.export(tmp_path / "toy.safetensors", dtype="float16")
    state, meta = load_weights(path)
    assert state.keys() == trainer.model.state_dict().keys()
    torch.testing.assert_close(state["net.0.weight"], trainer.ema.module.state_dict()["net.0.weight"],
                               rtol=1e-3, atol=1e-3)
    assert meta["weights"] == "ema" and meta["steps"] == 6 and meta["model"]["name"] == "toy-test"
    state2, meta2 = load_weights(export_from_checkpoint(ckpts[-1][1], tmp_path / "toy2.safetensors"))
    _states_equal(state2, trainer.ema.module.state_dict())
    # a finished run is not overwritten by accident
    with pytest.raises(RunDirError, match="--resume"):
        Trainer(_config(), run, progress=False).run()


def test_init_from_continues_from_exported_weights_and_counts_both_runs(tmp_path):
    first = Trainer(_config(), tmp_path / "first", progress=False)
    first.run()
    start = first.export(tmp_path / "first.safetensors", dtype="float32")
    second = Trainer(_config(init_from=str(start), steps=4, seed=5), tmp_path / "second", progress=False)
    # the second run starts from the first run's EMA weights, not from a fresh initialisation
    _states_equal(second.model.state_dict(), first.ema.module.state_dict())
    second.run()
    _, meta = load_weights(second.export(tmp_path / "second.safetensors"))
    assert meta["init_from"]["file"] == "first.safetensors"
    cost = training_cost(meta)
    first_wall, second_wall = first.history[-1]["wall_s"], second.history[-1]["wall_s"]
    assert cost["steps"] == 6 + 4 and cost["samples"] == 24 + 16
    assert cost["wall_s"] == pytest.approx(first_wall + second_wall)
    assert [r["steps"] for r in cost["runs"]] == [6, 4]
    # the checkpoint carries the same record, so an export from it reports the same cost
    _, from_ckpt = load_weights(export_from_checkpoint(latest_checkpoint(tmp_path / "second" / "checkpoints"),
                                                       tmp_path / "again.safetensors"))
    assert training_cost(from_ckpt) == cost
    assert training_cost({}) is None and training_cost(meta | {"init_from": None})["steps"] == 4


def test_step_items_do_not_depend_on_world_size():
    one = step_items(5, 6, 2, 0, 1)
    assert one == [(True, 10), (True, 11), (False, 20), (False, 21), (False, 22), (False, 23)]
    two = step_items(5, 6, 2, 0, 2) + step_items(5, 6, 2, 1, 2)
    three = [it for r in range(3) for it in step_items(5, 6, 2, r, 3)]
    assert sorted(two) == sorted(one) == sorted(three)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        trainer = Trainer(_config(), out_dir, progress=False)
        trainer.run(stop_at=3)
        trainer = Trainer(_config(), out_dir, progress=False)
        trainer.run(resume=True)
        weights = trainer.model.state_dict()["net.0.weight"].clone()
        everyone = [None] * world
        dist.all_gather_object(everyone, weights)
        if rank == 0:
            queue.put({"same": all(torch.equal(w, everyone[0]) for w in everyone),
                       "losses": [r["loss"] for r in trainer.history], "world": trainer.world})
    finally:
        dist.destroy_process_group()


def test_ddp_single_process_matches_plain_training(tmp_path):
    """The DDP code path (wrapper, all-reduce, RNG gathering, resume) with a world of one."""
    import queue as q

    results = q.Queue()
    _ddp_worker(0, 1, str(tmp_path / "pg"), str(tmp_path / "ddp"), results)
    got = results.get_nowait()
    assert got["world"] == 1 and got["same"]
    plain = Trainer(_config(), tmp_path / "plain", progress=False)
    plain.run()
    assert got["losses"] == [r["loss"] for r in plain.history]


@pytest.mark.heavy
def test_ddp_two_processes(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "pg"), str(tmp_path / "ddp"), results), nprocs=2, join=True)
    got = results.get(timeout=10)
    assert got["world"] == 2 and got["same"] and len(got["losses"]) == 6
    ck = load_checkpoint(list_checkpoints(tmp_path / "ddp" / "checkpoints")[-1][1])
    assert set(ck.rng) == {0, 1} and ck.meta["world"] == 2


@pytest.mark.parametrize("no_decay_embeddings", [False, True])
def test_listed_embeddings_join_the_no_decay_group_only_when_asked(tmp_path, no_decay_embeddings):
    trainer = Trainer(_config(**{"optimizer.no_decay_embeddings": no_decay_embeddings}), tmp_path, progress=False)
    listed = trainer.model.net[0].weight
    decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in trainer.optimizer.param_groups}
    assert (id(listed) in decay[0.0]) is no_decay_embeddings
    assert id(trainer.model.net[3].weight) in decay[0.01]


@pytest.mark.parametrize("optimizer", ["lamb", "adamw"])
def test_zero_matrices_under_lamb_are_named_at_setup(tmp_path, optimizer, recwarn):
    config = _config(**{"model.params.zero_output": True, "optimizer.name": optimizer})
    Trainer(config, tmp_path, progress=False)
    messages = [str(w.message) for w in recwarn if "trust ratio" in str(w.message)]
    if optimizer == "adamw":
        assert messages == []
    else:
        assert len(messages) == 1 and "(net.3.weight)" in messages[0] and "adamw" in messages[0]
    recwarn.clear()
    Trainer(_config(), tmp_path / "plain", progress=False)      # the same network with its default init
    assert not [w for w in recwarn if "trust ratio" in str(w.message)]


def test_bf16_autocast_and_adamw(tmp_path):
    trainer = Trainer(_config(precision="bf16", steps=2, checkpoint_every=0, **{"optimizer.name": "adamw"}),
                      tmp_path / "bf16", progress=False)
    res = trainer.run()
    assert res.steps == 2 and math.isfinite(res.final_loss)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)


def test_train_command(tmp_path, capsys):
    import yaml

    from evalkit.cli import main

    cfg = tmp_path / "toy.yaml"
    from evalkit.config import to_dict

    cfg.write_text(yaml.safe_dump(to_dict(_config())))
    out = tmp_path / "cli"
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--set", "steps=4",
                 "--export", str(tmp_path / "w.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "trained 4 steps (16 samples)" in text and (tmp_path / "w.safetensors").is_file()
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--resume", "--set", "steps=6"]) == 0
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [4, 6]
    assert main(["train", str(cfg), "--out", str(out), "--set", "image_ratio=2"]) == 2
    assert "image_ratio" in capsys.readouterr().err


def test_shipped_configs_parse():
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted([*(root / "train").glob("*.yaml"), *(root / "ablation").glob("train-*.yaml")])
    assert len(files) > 5, f"training configs missing under {root}"
    for f in files:
        cfg = load_config(TrainConfig, f)
        assert cfg.steps > 0 and cfg.batch_size % 1 == 0


def test_shapes_source_mixes_images_and_videos():
    spec = VideoSpec(frames=4, height=12, width=16, fps=8.0)
    src = ShapesSource(spec, seed=0, params={"fps_choices": [4.0, 8.0]})
    from evalkit.generators.trainer import fetch_batch

    batch = fetch_batch(src, step_items(0, 6, 2, 0, 1))
    assert batch.videos.shape == (6, 4, 12, 16, 3) and batch.videos.dtype == torch.uint8
    assert batch.is_image.tolist() == [True, True, False, False, False, False]
    assert torch.isinf(batch.fps[:2]).all() and set(batch.fps[2:].tolist()) <= {4.0, 8.0}
    assert (batch.videos[:2] == batch.videos[:2, :1]).all()  # images are static clips
    again = fetch_batch(src, step_items(0, 6, 2, 0, 1))
    assert torch.equal(batch.videos, again.videos) and batch.captions == again.captions
    assert not torch.equal(fetch_batch(src, step_items(1, 6, 2, 0, 1)).videos, batch.videos)




def test_shapes_source_pool_reuses_rendered_clips():
    spec = VideoSpec(frames=2, height=8, width=8, fps=8.0)
    pooled = ShapesSource(spec, seed=0, params={"pool": 3})
    plain = ShapesSource(spec, seed=0, params={})
    a = pooled.clips([0, 1, 4], images=False)
    b = plain.clips([0, 1, 1], images=False)
    assert torch.equal(a.videos, b.videos) and a.captions == b.captions
    assert len(pooled._cache) == 2
    assert torch.equal(pooled.clips([3], images=True).videos, plain.clips([0], images=True).videos)


TINY_FIT = {"base": "fit-tiny", "video_height": 8, "video_width": 16,
            "fit": {"frames": 4, "height": 8, "width": 16, "group_size": [4, 1, 2], "patch_width": 16,
                    "num_latents": 8, "latent_width": 16, "num_blocks": 1, "global_layers": 1, "patch_head_dim": 8,
                    "latent_head_dim": 8, "cond_width": 16}}


def test_trains_snapvideo_fit_on_shapes_and_the_generator_loads_the_export(tmp_path, monkeypatch):
    """The real wiring: snapvideo-fit builder + shapes source + export read back by the generator."""
    from evalkit.generators.snapvideo import SnapVideoConfig, SnapVideoGenerator

    cfg = from_dict(TrainConfig, {
        "model": {"name": "snapvideo-fit", "params": {"model": TINY_FIT}},
        "data": {"name": "shapes", "frames": 4, "height": 8, "width": 16, "fps": 24.0, "params": {"pool": 4}},
        "text_encoder": {"name": "hashed", "params": {"dim": 8, "max_length": 8}},
        "steps": 2, "batch_size": 2, "device": "cpu", "log_every": 1,
    })
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    res = trainer.run()
    assert res.steps == 2 and math.isfinite(res.final_loss)
    path = trainer.export(tmp_path / "fit.safetensors")
    gen = SnapVideoGenerator(from_dict(SnapVideoConfig, {"checkpoint": str(path), "steps": 2}))
    spec = VideoSpec(frames=4, height=8, width=16, fps=24.0)
    videos = gen.generate(["a red circle moving left"], [0], spec)
    assert videos.shape == (1, 4, 8, 16, 3) and videos.dtype == torch.uint8
    # the file records the resolved architecture, so it loads the same after the named base config changes
    _, meta = load_weights(path)
    assert meta["model_resolved"]["fit"]["patch_width"] == 16
    from evalkit.generators import model_configs

    changed = dict(model_configs.MODEL_CONFIGS)
    changed["fit-tiny"] = lambda: model_configs.SnapVideoModelConfig(
        fit=model_configs.FITConfig(**{**model_configs.to_dict(model_configs._fit_tiny().fit), "ff_ratio": 2}))
    monkeypatch.setattr(model_configs, "MODEL_CONFIGS", changed)
    again = SnapVideoGenerator(from_dict(SnapVideoConfig, {"checkpoint": str(path), "steps": 2}))
    assert torch.equal(again.generate(["a red circle moving left"], [0], spec), videos)


def test_init_from_widens_a_linear_patch_embedding_to_the_same_function(tmp_path):
    """``init_from`` into a network with ``fit.embed_kernel`` starts from the file's function exactly."""
    from evalkit.generators.conditioning import make_conditioning
    from evalkit.generators.fit import FIT

    def fit_config(**fit):
        return from_dict(TrainConfig, {
            "model": {"name": "snapvideo-fit", "params": {"model": {**TINY_FIT, "fit": {**TINY_FIT["fit"], **fit}}}},
            "data": {"name": "shapes", "frames": 4, "height": 8, "width": 16, "fps": 24.0, "params": {"pool": 4}},
            "text_encoder": {"name": "hashed", "params": {"dim": 8, "max_length": 8}},
            "steps": 2, "batch_size": 2, "device": "cpu", "log_every": 1,
        })

    first = Trainer(fit_config(), tmp_path / "first", progress=False)
    first.run()
    start = first.export(tmp_path / "first.safetensors", dtype="float32")
    wide_config = fit_config(embed_kernel=[3, 8, 12])
    wide_config.init_from = str(start)
    wide = Trainer(wide_config, tmp_path / "wide", progress=False)

    def network(model):
        return next(m for m in model.modules() if isinstance(m, FIT)).eval()

    paper_net, wide_net = network(first.ema.module), network(wide.model)
    assert wide_net.patch_embed.weight.shape == (16, 3, 3, 8, 12)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 8, 16, generator=gen)
    cond = make_conditioning(torch.randn(2, 5, 8, generator=gen), torch.ones(2, 5, dtype=torch.bool),
                             fps=24.0, resolution=(8, 16))
    with torch.no_grad():
        torch.testing.assert_close(wide_net(x, torch.full((2,), 0.1), cond)[0],
                                   paper_net(x, torch.full((2,), 0.1), cond)[0], atol=1e-5, rtol=1e-5)
