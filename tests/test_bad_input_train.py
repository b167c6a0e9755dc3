"""Bad input to ``supernet_train.py``: one line on stderr, exit 2, no traceback, output untouched.
Also: resuming under changed settings, corrupt images, a failed checkpoint write, and one
training step with the ImageNet recipe's augmentation."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import supernet_train
from tests.badinput import BAD_FILE_MESSAGES, assert_refused, bad_files, image_folder, write_yaml
from tests.test_training import TINY_SPACE, write_cfg
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.data import _holdout_indices
from training.run import train_supernet

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digits")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    out = bad_files(root)
    out["space_abc"] = write_yaml(root / "space_abc.yaml", {**TINY_SPACE, "img_size": "abc"})
    (root / "space_dup.yaml").write_text(yaml.safe_dump(TINY_SPACE) + "img_size: 64\n")
    out["space_dup"] = root / "space_dup.yaml"
    out["a_file"] = root / "a_file.txt"
    out["a_file"].write_text("not a directory\n")
    out["junk_ckpt"] = root / "junk.pth"
    out["junk_ckpt"].write_text("not a checkpoint\n")
    out["empty_folder"] = root / "empty_folder"
    for sub in ("train/c0", "val/c0"):
        (out["empty_folder"] / sub).mkdir(parents=True)
    out["no_train"] = root / "no_train"
    out["no_train"].mkdir()
    out["folder"] = image_folder(root / "folder", classes=3, per_class=4, size=32)
    out["folder_mismatch"] = image_folder(root / "mismatch", classes=3, per_class=4, size=32)
    (out["folder_mismatch"] / "val" / "class2").rename(out["folder_mismatch"] / "val" / "other")
    return out


@pytest.fixture
def good(tmp_path: Path, data_dir: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    return write_cfg(tmp_path / "good.yaml", data_dir, out, optim={"epochs": 1}), out


def _folder(root: Path) -> list[str]:
    return ["-o", "data.dataset=folder", "-o", f"data.root={root}", "-o", "space.num_classes=3"]


CASES = {  # name: (argv after --cfg good, expected text)
    "lr_inf": (["-o", "optim.lr=inf"], "'optim.lr' must be a finite number"),
    "lr_nan": (["-o", "optim.lr=nan"], "'optim.lr' must be a finite number"),
    "lr_yaml_inf": (["-o", "optim.lr=.inf"], "'optim.lr' must be a finite number"),
    "lr_text": (["-o", "optim.lr=fast"], "'optim.lr' has the wrong type"),
    "lr_negative": (["-o", "optim.lr=-1"], "optim.lr must be positive"),
    "unknown_key": (["-o", "optim.lrr=0.1"], "unknown config key 'optim.lrr'"),
    "unknown_section": (["-o", "optimizer.lr=0.1"], "unknown config key 'optimizer'"),
    "not_a_section": (["-o", "seed.x=1"], "'seed' is not a section"),
    "no_equals": (["-o", "optim.lr"], "must look like section.key=value"),
    "epochs_zero": (["--epochs", "0"], "optim.epochs must be positive"),
    "epochs_text": (["--epochs", "ten"], "invalid int value: 'ten'"),
    "warmup_too_long": (["-o", "optim.warmup_epochs=5"], "optim.warmup_epochs must be in [0, epochs)"),
    "bad_augment": (["-o", "data.rand_augment=rand-x9"], "is not a timm augmentation string"),
    "bad_augment_word": (["-o", "data.rand_augment=strong"], "is not a timm augmentation string"),
    "batch_zero": (["-o", "data.batch_size=0"], "batch sizes must be positive"),
    "holdout_zero": (["-o", "data.holdout_per_class=0"], "data.holdout_per_class must be >= 1"),
    "dataset": (["-o", "data.dataset=imagenet"], "data.dataset must be 'digits' or 'folder'"),
    "folder_no_root": (["-o", "data.dataset=folder"], "data.root is required"),
    "device": (["-o", "device=tpu"], "device must be auto, cpu or cuda"),
    "amp_fp16_cpu": (["-o", "optim.amp=fp16", "-o", "device=cpu"], "optim.amp=fp16 needs a CUDA device"),
    "amp_word": (["-o", "optim.amp=half"], "optim.amp must be"),
    "wandb_mode": (["-o", "log.wandb_mode=sometimes"], "log.wandb_mode must be"),
    "qkv_init": (["-o", "model.qkv_init=zeros"], "model.qkv_init must be"),
    "drop_path": (["-o", "model.drop_path=1.5"], "model.drop_path must be in [0, 1)"),
    "mean_length": (["-o", "data.mean=[0.5]"], "'data.mean' has the wrong type"),
    "std_zero": (["-o", "data.std=[1, 0, 1]"], "data.std entries must be positive"),
    "space_preset": (["-o", "space=nosuchspace"], "no space preset 'nosuchspace'"),
    "space_img_abc": (["-o", "space.img_size=abc"], "space field 'img_size' must be a positive integer"),
    "space_empty_axis": (["-o", "space.depth=[]"], "space field 'depth' is an empty list"),
    "space_patch_big": (["-o", "space.patch_size=[64]"], "exceeds img_size 32"),
    "space_unknown": (["-o", "space.width=[16]"], "unknown space field 'width'"),
    "space_pool": (["-o", "space.pool=max"], "space field 'pool' must be one of"),
    "space_bool": (["-o", "space.abs_pos=maybe"], "space field 'abs_pos' must be true or false"),
    "resume_missing": (["--resume", "/nonexistent/ckpt.pth"], "does not exist"),
    "wrong_flag": (["--epochz", "3"], "unrecognized arguments: --epochz 3"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_option_is_one_line_and_writes_nothing(name: str, good, capsys) -> None:
    cfg, out = good
    argv, expect = CASES[name]
    assert_refused(supernet_train.main, ["--cfg", str(cfg), *argv], expect, capsys, out)


@pytest.mark.parametrize("name", sorted(BAD_FILE_MESSAGES))
def test_bad_config_file(name: str, files, good, capsys) -> None:
    _, out = good
    argv = ["--cfg", str(files[name]), "--output", str(out)]
    assert_refused(supernet_train.main, argv, BAD_FILE_MESSAGES[name], capsys, out)


FILE_CASES = {  # name: (argv built from the files fixture, expected text)
    "space_file_abc": (
        lambda f: ["-o", f"space={f['space_abc']}"],
        "space field 'img_size' must be a positive",
    ),
    "space_file_dup": (lambda f: ["-o", f"space={f['space_dup']}"], "key 'img_size' appears twice"),
    "space_file_dir": (lambda f: ["-o", f"space={f['dir']}"], "is a directory"),
    "space_file_binary": (lambda f: ["-o", f"space={f['binary']}"], "is not a text"),
    "resume_dir": (lambda f: ["--resume", str(f["dir"])], "is a directory"),
    "resume_junk": (lambda f: ["--resume", str(f["junk_ckpt"])], "cannot be read"),
    "output_is_file": (lambda f: ["--output", str(f["a_file"])], "is a file, not a directory"),
    "output_unwritable": (lambda f: ["--output", "/sys/mcunas-test-out"], "cannot be written"),
    "folder_missing_train": (lambda f: _folder(f["no_train"]), "has no 'train' folder"),
    "folder_empty": (lambda f: _folder(f["empty_folder"]), "holds no images"),
    "folder_classes_differ": (lambda f: _folder(f["folder_mismatch"]), "both need the same <class>/ folders"),
    "holdout_too_many": (
        lambda f: [*_folder(f["folder"]), "-o", "data.holdout_per_class=4"],
        "leaves no training image of class",
    ),
    "batch_over_data": (
        lambda f: [*_folder(f["folder"]), "-o", "data.holdout_per_class=1"],
        "the training split has 9 images, fewer than one batch of data.batch_size=32",
    ),
    "folder_class_count": (
        lambda f: [*_folder(f["folder"])[:-2], "-o", "space.num_classes=5", "-o", "data.holdout_per_class=1"],
        "the dataset has 3 classes but the space's num_classes is 5",
    ),
}


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_bad_path_or_data(name: str, files, good, capsys) -> None:
    cfg, out = good
    build, expect = FILE_CASES[name]
    argv = ["--cfg", str(cfg), *build(files)]
    watch = [out, *(Path(a) for a in argv if a.startswith("/sys/"))]
    assert_refused(supernet_train.main, argv, expect, capsys, *watch)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir: Path) -> tuple[Path, Path]:
    """A finished 1-epoch run to resume from."""
    root = tmp_path_factory.mktemp("trained")
    out = root / "out"
    cfg = write_cfg(root / "c.yaml", data_dir, out, optim={"epochs": 1})
    assert supernet_train.main(["--cfg", str(cfg)]) == 0
    return cfg, out


RESUME_CASES = {
    "lr": (["-o", "optim.lr=1e6"], "optim.lr: 0.005 -> 1000000.0"),
    "seed": (["-o", "seed=3"], "seed: 0 -> 3"),
    "batch": (["-o", "data.batch_size=16"], "data.batch_size: 32 -> 16"),
    "augment": (["-o", "data.rand_augment=rand-m9-mstd0.5-inc1"], "data.rand_augment: None ->"),
    "two_keys": (["-o", "optim.lr=0.1", "-o", "optim.weight_decay=0.0"], "optim.weight_decay: 0.05 -> 0.0"),
    "sandwich": (["-o", "optim.sandwich=true"], "optim.sandwich: False -> True"),
    "init_from": (["-o", "model.init_from=x.pth"], "model.init_from: None -> 'x.pth'"),
    "space": (["-o", "space.embed_dim=[16, 32]"], "belongs to another search space"),
}


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
def test_resume_with_changed_settings_is_refused(name: str, trained, capsys) -> None:
    cfg, out = trained
    argv, expect = RESUME_CASES[name]
    line = assert_refused(
        supernet_train.main, ["--cfg", str(cfg), "--epochs", "2", *argv], expect, capsys, out
    )
    assert "--restart" in line or name == "space"


def test_resume_applies_what_it_may_change(trained, tmp_path: Path, capsys) -> None:
    """A longer run (optim.epochs) and logging settings are applied on resume: the lr of the
    continued run follows the schedule of the new length."""
    cfg, out = trained
    work = tmp_path / "copy"
    work.mkdir()
    for f in out.iterdir():
        (work / f.name).write_bytes(f.read_bytes())
    argv = ["--cfg", str(cfg), "--output", str(work), "--epochs", "3", "-o", "log.progress=false"]
    assert supernet_train.main(argv) == 0
    ckpt = load_checkpoint(work / "checkpoint.pth")
    assert ckpt["epoch"] == 3 and ckpt["config"]["optim"]["epochs"] == 3
    fresh = load_config(cfg, ["optim.epochs=3", f"log.output={tmp_path / 'fresh'}"])
    train_supernet(fresh)
    lr_resumed = [m["lr"] for m in map(yaml.safe_load, (work / "metrics.jsonl").read_text().splitlines())]
    lr_fresh = [
        m["lr"] for m in map(yaml.safe_load, (tmp_path / "fresh" / "metrics.jsonl").read_text().splitlines())
    ]
    assert lr_resumed[1:] == pytest.approx(lr_fresh[1:])  # epochs 2-3 on the 3-epoch schedule


def test_stale_temporaries_are_removed_on_restart(trained, tmp_path: Path) -> None:
    cfg, out = trained
    work = tmp_path / "copy"
    work.mkdir()
    for f in out.iterdir():
        (work / f.name).write_bytes(f.read_bytes())
    stale = work / ".checkpoint.pth.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert supernet_train.main(["--cfg", str(cfg), "--output", str(work)]) == 0
    assert not stale.exists()


def test_nan_in_first_epoch_says_no_checkpoint_exists(good, capsys) -> None:
    cfg, out = good
    assert supernet_train.main(["--cfg", str(cfg), "-o", "optim.lr=1e12", "-o", "optim.clip_grad=null"]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint was written" in err and "is intact" not in err
    assert not (out / "checkpoint.pth").exists()


def _corrupt(folder: Path, split: str) -> Path:
    victim = sorted((folder / split / "class1").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # a JPEG header with no pixel data
    return victim


@pytest.mark.parametrize("split", ["train", "val"])
def test_corrupt_image_is_an_error_not_a_substitute(
    split: str, tmp_path: Path, data_dir: Path, capsys
) -> None:
    folder = image_folder(tmp_path / "data", classes=3, per_class=4, size=32)
    victim = _corrupt(folder, split)
    cfg = write_cfg(tmp_path / "c.yaml", data_dir, tmp_path / "out", optim={"epochs": 1})
    argv = ["--cfg", str(cfg), *_folder(folder), "-o", "data.holdout_per_class=1", "-o", "data.batch_size=4"]
    assert supernet_train.main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(victim) in lines[0] and "cannot be decoded" in lines[0]
    assert "Traceback" not in err


def test_corrupt_training_image_skipped_only_when_asked(tmp_path: Path, data_dir: Path, capsys) -> None:
    folder = image_folder(tmp_path / "data", classes=3, per_class=4, size=32)
    files = sorted((folder / "train").rglob("*.jpg"))  # the reader's order: class, then name
    held = set(_holdout_indices([int(f.parent.name[-1]) for f in files], 1).tolist())
    victim = next(f for i, f in enumerate(files) if i not in held)  # a training image, not a held-out one
    victim.write_bytes(victim.read_bytes()[:40])
    cfg = write_cfg(tmp_path / "c.yaml", data_dir, tmp_path / "out", optim={"epochs": 1})
    argv = [
        "--cfg",
        str(cfg),
        *_folder(folder),
        "-o",
        "data.holdout_per_class=1",
        "-o",
        "data.skip_corrupt=true",
        "-o",
        "data.batch_size=3",  # 9 training images in 3 full batches: every one is read
    ]
    assert supernet_train.main(argv) == 0
    assert f"skipped corrupt training image {victim}" in capsys.readouterr().err


def test_corrupt_image_in_a_loader_worker_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    """With loader workers the error crosses a process boundary; still one line, no traceback."""
    folder = image_folder(tmp_path / "data", classes=3, per_class=4, size=32)
    victim = _corrupt(folder, "val")
    cfg = write_cfg(tmp_path / "c.yaml", data_dir, tmp_path / "out", optim={"epochs": 1})
    argv = ["--cfg", str(cfg), *_folder(folder), "-o", "data.holdout_per_class=1", "-o", "data.workers=2"]
    argv += ["-o", "data.batch_size=4"]
    proc = subprocess.run(
        [sys.executable, "supernet_train.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(victim) in errors[0]
    assert "Traceback" not in proc.stderr


def test_failed_checkpoint_write_is_one_line_and_keeps_the_last_checkpoint(trained, tmp_path: Path) -> None:
    """A full disk (here: a file-size limit, which fails the write the same way) at the checkpoint
    write: one line, exit 2, the previous checkpoint intact and no temporary left behind."""
    cfg, out = trained
    work = tmp_path / "copy"
    work.mkdir()
    for f in out.iterdir():
        (work / f.name).write_bytes(f.read_bytes())
    before = (work / "checkpoint.pth").read_bytes()
    limit = 64 * 1024  # enough for logs and metrics, not for a checkpoint

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    assert len(before) > limit
    proc = subprocess.run(
        [sys.executable, "supernet_train.py", "--cfg", str(cfg), "--output", str(work), "--epochs", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=600, preexec_fn=small_files,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "checkpoint.pth" in errors[0]
    assert "Traceback" not in proc.stderr
    assert (work / "checkpoint.pth").read_bytes() == before
    assert not list(work.glob(".*.tmp"))


@pytest.mark.slow
def test_imagenet_recipe_augmentation_trains_a_step(tmp_path: Path) -> None:
    """The ImageNet recipe's data settings (RandAugment rand-m9-mstd0.5-inc1, random erasing,
    Mixup/CutMix, ImageNet mean/std) run a training epoch on generated RGB images; and the
    strongest posterize of that RandAugment (0 bits kept) works under the pinned Pillow."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    ra = rand_augment_transform("rand-m9-mstd0.5-inc1", {})
    posterize = next(op for op in ra.ops if op.name == "PosterizeIncreasing")
    img = Image.new("RGB", (32, 32), (200, 120, 40))
    black = posterize.aug_fn(img, *posterize.level_fn(10.0, posterize.hparams), **posterize.kwargs)
    assert black.getextrema() == ((0, 0), (0, 0), (0, 0))

    recipe = yaml.safe_load((REPO / "configs/train/mcuformer-t-imagenet.yaml").read_text())
    folder = image_folder(tmp_path / "data", classes=3, per_class=24, size=48)
    data = {**recipe["data"], "root": str(folder), "holdout_per_class": 2, "batch_size": 16, "workers": 0}
    space = {**TINY_SPACE, "num_classes": 3}
    cfg = write_yaml(
        tmp_path / "c.yaml",
        {
            "space": space,
            "data": data,
            "optim": {"epochs": 1, "warmup_epochs": 0, "lr_base_batch": 16},
            "log": {"output": str(tmp_path / "out"), "progress": False},
            "eval": {"num_subnets": 0},
        },
    )
    torch.manual_seed(0)
    assert supernet_train.main(["--cfg", str(cfg)]) == 0
    ckpt = load_checkpoint(tmp_path / "out" / "checkpoint.pth")
    assert ckpt["config"]["data"]["rand_augment"] == "rand-m9-mstd0.5-inc1"
    assert ckpt["config"]["data"]["mean"] == [0.485, 0.456, 0.406]
    assert torch.isfinite(torch.tensor(ckpt["metrics"]["loss"]))
