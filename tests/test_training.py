"""Supernet training: convergence, exact resume, DDP, non-finite loss, strict config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from timm.loss import LabelSmoothingCrossEntropy

import supernet_train
import training.loop as loop_mod
import training.recipe as recipe_mod
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.run import train_supernet

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE = {
    "embed_dim": [16, 24],
    "depth": [1, 2],
    "num_heads": [1, 2],
    "mlp_ratio": [2.0],
    "patch_size": [8],
    "rank_ratio": [0.5, 1.0],
    "img_size": 32,
    "num_classes": 10,
    "head_dim": 8,
    "pool": "avg",
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


def write_cfg(path: Path, data_dir: Path, output: Path, **sections) -> Path:
    cfg = {
        "space": TINY_SPACE,
        "seed": 0,
        "data": {
            "cache_dir": str(data_dir),
            "batch_size": 32,
            "rand_augment": None,
            "hflip": 0.0,
            "reprob": 0.0,
            "mixup": 0.0,
            "cutmix": 0.0,
            "scale": [0.8, 1.0],
            "crop_pct": 1.0,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        "optim": {"lr": 5e-3, "lr_base_batch": 32, "epochs": 4, "warmup_epochs": 0, "clip_grad": 1.0},
        "model": {"drop_path": 0.0},
        "eval": {"num_subnets": 1},
        "log": {"output": str(output), "progress": False},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_metrics(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_training_runs_and_loss_falls(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "run"
    cfg = load_config(write_cfg(tmp_path / "c.yaml", data_dir, out))
    summary = train_supernet(cfg)
    metrics = read_metrics(out)
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 0.2, [m["loss"] for m in metrics]
    assert set(metrics[0]["holdout_top1"]) == {"max", "min", "rand0"}
    assert summary["test_top1"]["max"] > 20.0  # well above chance (10%) after 4 tiny epochs
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert (
        ckpt["epoch"] == 4
        and ckpt["config"]["optim"]["epochs"] == 4
        and ckpt["space"]["embed_dim"] == [16, 24]
    )
    assert (out / "config.yaml").exists() and (out / "final.json").exists()


def test_resume_after_interruption_is_exact(tmp_path: Path, data_dir: Path, monkeypatch) -> None:
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    train_supernet(load_config(write_cfg(tmp_path / "a.yaml", data_dir, ref_out, optim={"epochs": 3})))
    real = loop_mod.train_one_epoch

    def interrupted(*args, epoch: int, **kw):
        if epoch == 2:
            raise KeyboardInterrupt  # killed in the middle of the last epoch
        return real(*args, epoch=epoch, **kw)

    cfg_path = write_cfg(tmp_path / "b.yaml", data_dir, cut_out, optim={"epochs": 3})
    monkeypatch.setattr(loop_mod, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(load_config(cfg_path))
    assert load_checkpoint(cut_out / "checkpoint.pth")["epoch"] == 2
    monkeypatch.setattr(loop_mod, "train_one_epoch", real)
    train_supernet(load_config(cfg_path))  # the same command continues
    ref, cut = load_checkpoint(ref_out / "checkpoint.pth"), load_checkpoint(cut_out / "checkpoint.pth")
    assert ref["epoch"] == cut["epoch"] == 3
    for key, value in ref["model"].items():
        assert torch.equal(value, cut["model"][key]), key
    assert read_metrics(ref_out)[-1]["holdout_top1"] == read_metrics(cut_out)[-1]["holdout_top1"]


def test_non_finite_loss_stops_with_last_good_checkpoint(
    tmp_path: Path, data_dir: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "run"
    path = write_cfg(tmp_path / "c.yaml", data_dir, out, optim={"epochs": 1})
    assert supernet_train.main(["--cfg", str(path)]) == 0
    before = (out / "checkpoint.pth").read_bytes()

    class Diverging(LabelSmoothingCrossEntropy):
        """The recipe's loss, turning NaN from the 4th step of the continued run."""

        calls = 0

        def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            Diverging.calls += 1
            loss = super().forward(x, target)
            return loss * float("nan") if Diverging.calls > 3 else loss

    monkeypatch.setattr(recipe_mod, "LabelSmoothingCrossEntropy", Diverging)
    code = supernet_train.main(["--cfg", str(path), "--epochs", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "loss is" in err and "last good checkpoint" in err
    assert (out / "checkpoint.pth").read_bytes() == before
    assert load_checkpoint(out / "checkpoint.pth")["epoch"] == 1


def test_lecun_qkv_init_reaches_the_trained_supernet(tmp_path: Path, data_dir: Path) -> None:
    """``model.qkv_init`` is applied to the fresh supernet: after one low-lr epoch its qkv weights
    still sit at std fan_in^-1/2 (24^-1/2 = 0.20), ten times timm's 0.02 the default keeps."""
    stds = {}
    for scheme in ("trunc_normal", "lecun"):
        out = tmp_path / scheme
        path = write_cfg(
            tmp_path / f"{scheme}.yaml",
            data_dir,
            out,
            optim={"epochs": 1, "lr": 1e-4},
            model={"qkv_init": scheme},
        )
        train_supernet(load_config(path))
        ckpt = load_checkpoint(out / "checkpoint.pth")
        assert ckpt["config"]["model"]["qkv_init"] == scheme
        stds[scheme] = ckpt["model"]["blocks.0.attn.qkv.weight"].std().item()
    assert stds["trunc_normal"] == pytest.approx(0.02, rel=0.3)
    assert stds["lecun"] == pytest.approx(24**-0.5, rel=0.2)


BAD = [
    (["-o", "optim.lrate=1"], "unknown config key 'optim.lrate'"),
    (["-o", "optim.epochs=ten"], "wrong type"),
    (["-o", "optim.epochs=0"], "optim.epochs"),
    (["-o", "optim.warmup_epochs=9"], "warmup_epochs"),
    (["-o", "data.dataset=imagenet"], "data.dataset"),
    (["-o", "data.dataset=folder"], "data.root"),
    (["-o", "data.dataset=folder", "-o", "data.root=/nonexistent"], "no 'train' folder"),
    (["-o", "space=nospace"], "no space preset"),
    (["-o", "space.embed_dim=[]"], "embed_dim"),
    (["-o", "optim.amp=fp16"], "fp16"),
    (["-o", "device=tpu"], "device"),
    (["-o", "model.qkv_init=xavier"], "model.qkv_init must be trunc_normal or lecun"),
    (["-o", "optimlr"], "section.key=value"),
    (["-o", "data=3"], "must be a mapping"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD)
def test_bad_configs_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, data_dir: Path, capsys, argv: list[str], needle: str
) -> None:
    out = tmp_path / "out"
    path = write_cfg(tmp_path / "c.yaml", data_dir, out)
    assert supernet_train.main(["--cfg", str(path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.startswith("error: ") and "\n" not in err, err
    assert not out.exists()


def test_bad_files_exit_2(tmp_path: Path, data_dir: Path, capsys) -> None:
    assert supernet_train.main(["--cfg", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "broken.yaml").write_text("optim: [1,\n")
    assert supernet_train.main(["--cfg", str(tmp_path / "broken.yaml")]) == 2
    (tmp_path / "list.yaml").write_text("- 1\n")
    assert supernet_train.main(["--cfg", str(tmp_path / "list.yaml")]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 3 and all(e.startswith("error: ") for e in errs)


def test_checkpoint_from_another_space_is_refused(tmp_path: Path, data_dir: Path, capsys) -> None:
    out = tmp_path / "run"
    path = write_cfg(tmp_path / "c.yaml", data_dir, out, optim={"epochs": 1})
    assert supernet_train.main(["--cfg", str(path)]) == 0
    other = write_cfg(
        tmp_path / "d.yaml", data_dir, tmp_path / "other", space={**TINY_SPACE, "embed_dim": [16, 32]}
    )
    assert supernet_train.main(["--cfg", str(other), "--resume", str(out / "checkpoint.pth")]) == 2
    err = capsys.readouterr().err
    assert "another search space" in err and "embed_dim" in err
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_torchrun_trains_in_sync(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "ddp"
    path = write_cfg(tmp_path / "c.yaml", data_dir, out, optim={"epochs": 2})
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", str(REPO / "supernet_train.py"), "--cfg", str(path),
           "--check-sync"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_metrics(out)
    assert [m["epoch"] for m in metrics] == [1, 2]  # written once (rank 0 only)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.pth", "config.yaml", "eval_subnets.json", "final.json", "metrics.jsonl", "train.log"]
    )
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert ckpt["epoch"] == 2
    # 2 ranks x 32 images: half the steps of a single process over the same data
    assert metrics[0]["loss"] > 0 and "resuming" not in (out / "train.log").read_text()


def test_multiscale_supernet_training_runs(tmp_path: Path, data_dir: Path) -> None:
    """Variable batch per token count, wired through the real training job."""
    out = tmp_path / "ms"
    space = {**TINY_SPACE, "patch_size": [4, 8]}
    path = write_cfg(tmp_path / "c.yaml", data_dir, out, space=space, optim={"epochs": 1})
    cfg = load_config(path, ["data.multiscale=true"])
    train_supernet(cfg)
    assert read_metrics(out)[0]["loss"] > 0
    assert load_checkpoint(out / "checkpoint.pth")["config"]["data"]["multiscale"] is True
