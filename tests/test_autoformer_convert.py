"""AutoFormer supernet checkpoints in, and the ``gp`` pool mode.

Ground truth: ``../shared/fixtures/autoformer`` beside the repository, written by AutoFormer's own
code (a supernet checkpoint, inputs, six subnet configs with AutoFormer's logits and parameter
counts). It is read, never regenerated here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.errors import ConfigError
from search_space.autoformer import (
    AF_LN_EPS,
    AutoFormerFlags,
    load_autoformer_supernet,
    read_autoformer_checkpoint,
    subnet_from_autoformer,
)
from search_space.config import SubnetConfig
from search_space.counting import count_flops, count_params
from search_space.space import SearchSpace
from search_space.static import StaticViT
from search_space.supernet import Supernet, extract_subnet
from search_space.svd_init import SupernetWeights, init_from_dense, load_dense_state_dict

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO.parent / "shared" / "fixtures" / "autoformer"
CKPT = FIXTURE / "supernet-tiny-af.pth"
# Choice lists covering the six reference configs (the checkpoint does not store AutoFormer's).
CHOICES = SearchSpace.from_dict(
    {
        "embed_dim": [96, 112, 128],
        "depth": [2, 3],
        "num_heads": [1, 2],
        "mlp_ratio": [2, 3, 4],
        "patch_size": [8],
    }
)


@pytest.fixture(scope="module")
def reference() -> dict:
    assert CKPT.is_file(), f"the AutoFormer fixture is missing at {FIXTURE}"
    return json.loads((FIXTURE / "reference.json").read_text())


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.load(FIXTURE / "inputs.pt")


@pytest.fixture(scope="module")
def converted():
    return load_autoformer_supernet(CKPT, choices=CHOICES)


def test_fixture_settings_are_read_from_the_checkpoint(converted, reference) -> None:
    _, space, flags = converted
    c = reference["constructor"]
    assert flags == AutoFormerFlags(gp=c["gp"], change_qkv=c["change_qkv"])
    assert space.pool == "gp" and space.rel_pos == c["relative_position"]
    assert space.rel_pos_max_distance == c["max_relative_position"]
    assert (space.img_size, space.patch_size, space.num_classes) == (c["img_size"], (c["patch_size"],), 10)
    assert space.head_dim == c["head_dim"] and space.qkv_bias


def test_all_six_cases_reproduce_autoformer_logits_and_params(converted, reference, inputs) -> None:
    model, space, _ = converted
    assert len(reference["cases"]) == 6
    for case in reference["cases"]:
        cfg = subnet_from_autoformer(case["config"], space)
        want = torch.tensor(case["logits"])
        model.set_active(cfg)
        with torch.no_grad():
            got = model(inputs)
            static = extract_subnet(model, cfg).eval()(inputs)
        assert (got - want).abs().max().item() <= 1e-5, cfg.short()
        assert (static - want).abs().max().item() <= 1e-5, cfg.short()
        assert count_params(cfg) == case["params"], cfg.short()
        assert sum(p.numel() for p in StaticViT(cfg).parameters()) == case["params"]


def test_project_slicing_differs_where_autoformer_slices_the_qkv_bias_as_a_prefix(
    converted, reference, inputs
):
    """The converted weights under the project's default qkv-bias slicing and LayerNorm epsilon:
    exact at the largest head count (up to the epsilon), off for one head. What the two
    AutoFormer options in `Supernet` are for."""
    model, space, _ = converted
    plain = Supernet(space)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    plain_eps = Supernet(space, ln_eps=AF_LN_EPS)
    plain_eps.load_state_dict(model.state_dict())
    plain_eps.eval()
    full, one_head = reference["cases"][0], reference["cases"][1]
    assert full["config"]["num_heads"] == [2, 2, 2] and one_head["config"]["num_heads"] == [1, 1]

    def diff(net: Supernet, case: dict) -> float:
        net.set_active(subnet_from_autoformer(case["config"], space))
        with torch.no_grad():
            return (net(inputs) - torch.tensor(case["logits"])).abs().max().item()

    assert diff(plain_eps, full) <= 1e-5
    assert diff(plain_eps, one_head) > 1e-3
    assert diff(plain, full) > 1e-5  # epsilon 1e-6 vs AutoFormer's 1e-5


def test_raw_checkpoint_initialises_a_narrower_low_rank_space(reference, inputs) -> None:
    """model.init_from with the AutoFormer file: cut to a narrower space (E 96 of 128), full-rank
    factors by SVD; the largest subnet is AutoFormer's case E96 D2 H22 M4/2."""
    sd = load_dense_state_dict(CKPT)
    assert isinstance(sd, SupernetWeights)
    case = next(
        c
        for c in reference["cases"]
        if c["config"]["embed_dim"][0] == 96 and c["config"]["num_heads"] == [2, 2]
    )
    target = SearchSpace.from_dict(
        {
            **CHOICES.fixed,
            "pool": "gp",
            "rel_pos": True,
            "embed_dim": [64, 96],
            "depth": [2],
            "num_heads": [2],
            "mlp_ratio": case["config"]["mlp_ratio"],
            "patch_size": [8],
            "img_size": 32,
            "num_classes": 10,
            "rank_ratio": [1.0],
            "attn_rank_ratio": [1.0],
        }
    )
    model = Supernet(target, ln_eps=AF_LN_EPS).eval()
    skipped = init_from_dense(model, sd)
    assert skipped and all(k.startswith("blocks.2.") for k in skipped)  # the source's third block
    cfg = SubnetConfig(
        **{
            **subnet_from_autoformer(case["config"], target).to_dict(),
            "rank_ratio": 1.0,
            "attn_rank_ratio": 1.0,
        }
    )
    model.set_active(cfg)
    with torch.no_grad():
        got = model(inputs)
    assert (got - torch.tensor(case["logits"])).abs().max().item() <= 1e-5


def test_plain_vit_wider_than_the_space_is_still_refused() -> None:
    space = SearchSpace.from_dict({"embed_dim": [32], "depth": [1], "num_heads": [1], "mlp_ratio": [2], "patch_size": [8],
                                   "img_size": 32, "num_classes": 10, "head_dim": 16})  # fmt: skip
    wide = Supernet(space.replace(embed_dim=(48,)))
    sd = {k: v for k, v in wide.state_dict().items()}
    for part in ("weight", "bias"):
        sd[f"patch_embed.proj.{part}"] = sd.pop(f"patch_embed.{part}")
    with pytest.raises(ConfigError, match="does not fit"):
        init_from_dense(Supernet(space), sd)


def test_cli_converts_and_init_from_reads_the_output(tmp_path: Path, converted, inputs) -> None:
    model, _, _ = converted
    out = tmp_path / "af.pth"
    space_yaml = tmp_path / "choices.yaml"
    space_yaml.write_text(json.dumps(CHOICES.to_dict()))
    run = subprocess.run(
        [sys.executable, "-m", "search_space.convert", str(CKPT), "-o", str(out), "--space", str(space_yaml)],
        cwd=REPO, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "supernet vs static" in run.stdout
    saved = torch.load(out, weights_only=True)
    assert saved["autoformer"]["gp"] and saved["autoformer"]["change_qkv"]
    for k, v in model.state_dict().items():
        assert torch.equal(saved["model"][k], v), k
    sd = load_dense_state_dict(out)
    assert isinstance(sd, SupernetWeights)
    assert torch.equal(sd["patch_embed.proj.weight"], model.patch_embed.weight)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.pth", "-o", "x.pth"], "does not exist"),
        ([str(FIXTURE / "reference.json"), "-o", "x.pth"], "cannot be read"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a if a.startswith("/") or a == "-o" else str(tmp_path / a) for a in args]
    run = subprocess.run([sys.executable, "-m", "search_space.convert", *args], cwd=REPO, capture_output=True,
                         text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "x.pth").exists()


def test_missing_init_from_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_dense_state_dict(tmp_path / "supernet-tiny.pth")
    with pytest.raises(ConfigError, match="does not exist"):
        read_autoformer_checkpoint(tmp_path / "supernet-tiny.pth")


def test_flags_come_from_checkpoint_args_unless_given() -> None:
    args = argparse.Namespace(gp=False, change_qkv=True)
    assert AutoFormerFlags.from_args(args) == AutoFormerFlags(gp=False, change_qkv=True)
    assert AutoFormerFlags.from_args(args, gp=True) == AutoFormerFlags(gp=True, change_qkv=True)
    assert AutoFormerFlags.from_args(None) == AutoFormerFlags(gp=True, change_qkv=True)


def _gp(**kw) -> SubnetConfig:
    base = dict(embed_dim=32, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 3.0), patch_size=8, img_size=32,
                num_classes=5, head_dim=16, pool="gp")  # fmt: skip
    return SubnetConfig(**{**base, **kw})


@pytest.mark.parametrize("kw", [{}, {"rel_pos": True, "rank_ratio": 0.5}, {"abs_pos": False}])
def test_gp_pool_keeps_a_class_token_and_reads_the_patch_mean(kw: dict) -> None:
    cfg = _gp(**kw)
    assert cfg.has_cls_token and cfg.mean_pool and cfg.num_tokens == cfg.num_patches + 1
    model = StaticViT(cfg).eval()
    assert model.cls_token is not None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert torch.allclose(model(x), model.head(tokens[:, 1:].mean(dim=1)))
        assert not torch.allclose(model(x), model.head(tokens.mean(dim=1)))
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    cls = StaticViT(SubnetConfig(**{**cfg.to_dict(), "pool": "cls"}))
    assert count_params(cfg) == sum(p.numel() for p in cls.parameters())
    assert count_flops(cfg) == count_flops(SubnetConfig(**{**cfg.to_dict(), "pool": "cls"}))


def test_gp_supernet_equals_extracted_static() -> None:
    space = SearchSpace.from_dict({"embed_dim": [24, 32], "depth": [1, 2], "num_heads": [1, 2], "mlp_ratio": [2, 3],
                                   "patch_size": [8, 16], "img_size": 32, "num_classes": 5, "head_dim": 16,
                                   "pool": "gp", "rel_pos": True})  # fmt: skip
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 32, 32)
    gen = __import__("numpy").random.default_rng(0)
    for cfg in [space.min_config(), space.max_config(), *(space.sample(gen) for _ in range(4))]:
        net.set_active(cfg)
        with torch.no_grad():
            assert torch.allclose(net(x), extract_subnet(net, cfg).eval()(x), atol=1e-6), cfg.short()


def _fake_autoformer_t(path: Path) -> dict[str, torch.Tensor]:
    """Random weights under AutoFormer's names and AutoFormer-T's supernet shapes (embed 256,
    depth 14, 4 heads of 64, MLP ratio 4, patch 16 at 224 px, relative position)."""
    gen = torch.Generator().manual_seed(0)
    e, m, rows = 256, 1024, 30
    sd = {
        "pos_embed": (1, 197, e),
        "cls_token": (1, 1, e),
        "patch_embed_super.proj.weight": (e, 3, 16, 16),
        "patch_embed_super.proj.bias": (e,),
        "norm.weight": (e,),
        "norm.bias": (e,),
        "head.weight": (1000, e),
        "head.bias": (1000,),
    }
    for i in range(14):
        p = f"blocks.{i}."
        sd.update({p + "attn.qkv.weight": (3 * e, e), p + "attn.qkv.bias": (3 * e,), p + "attn.proj.weight": (e, e),
                   p + "attn.proj.bias": (e,), p + "fc1.weight": (m, e), p + "fc1.bias": (m,), p + "fc2.weight": (e, m),
                   p + "fc2.bias": (e,)})  # fmt: skip
        for norm in ("attn_layer_norm", "ffn_layer_norm"):
            sd.update({f"{p}{norm}.weight": (e,), f"{p}{norm}.bias": (e,)})
        for rel in ("k", "v"):
            for t in ("v", "h"):
                sd[f"{p}attn.rel_pos_embed_{rel}.embeddings_table_{t}"] = (rows, 64)
    sd = {k: 0.02 * torch.randn(shape, generator=gen) for k, shape in sd.items()}
    torch.save({"model": sd, "epoch": 499, "args": argparse.Namespace(gp=True, change_qkv=True)}, path)
    return sd


@pytest.mark.slow
def test_imagenet_config_space_starts_from_an_autoformer_t_supernet(tmp_path: Path) -> None:
    """The ImageNet train config's space (E <= 216, low-rank MLP, patch 24 at 240 px, no relative
    position) from an AutoFormer-T-shaped checkpoint: cut to 216, SVD, resampled embeddings."""
    import yaml

    recipe = yaml.safe_load((REPO / "configs/train/mcuformer-t-imagenet.yaml").read_text())
    assert recipe["model"]["init_from"]  # the config starts from a pretrained supernet
    space = SearchSpace.from_dict(recipe["space"])
    af = _fake_autoformer_t(tmp_path / "supernet-tiny.pth")
    sd = load_dense_state_dict(tmp_path / "supernet-tiny.pth")
    model = Supernet(space)
    skipped = init_from_dense(model, sd)
    assert skipped and all(".rel_pos_" in k for k in skipped)  # the only weights this space has no place for
    assert torch.equal(model.cls_token, af["cls_token"][..., :216])
    assert torch.equal(model.blocks[13].norm2.weight, af["blocks.13.ffn_layer_norm.weight"][:216])
    fc1 = model.blocks[0].mlp.fc1  # rank 0.6 of the cut (864, 216) weight: the best rank-r approximation
    w = af["blocks.0.fc1.weight"][:864, :216].double()
    approx = (fc1.u.weight.double() @ fc1.v.weight.double())[:864, :216]
    r = fc1.v.weight.shape[0]
    best = torch.linalg.svdvals(w)[r:].square().sum().sqrt()
    assert torch.allclose((w - approx).norm(), best, rtol=1e-4)
    q = model.blocks[0].attn.qkv.weight  # q rows = AutoFormer's rows 0, 3, 6, ... (interleaved)
    assert torch.equal(q[:256], af["blocks.0.attn.qkv.weight"][0::3, :216])
    model.set_active(space.max_config())
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 240, 240))).all()


def test_missing_init_from_stops_training_before_anything_is_written(tmp_path: Path, capsys) -> None:
    import supernet_train
    from tests.badinput import assert_refused
    from tests.test_training import write_cfg

    out = tmp_path / "out"
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "data", out, optim={"epochs": 1})
    argv = ["--cfg", str(cfg), "-o", f"model.init_from={tmp_path / 'pretrained' / 'supernet-tiny.pth'}"]
    assert_refused(supernet_train.main, argv, "model.init_from", capsys, tmp_path)
    assert not out.exists()


def test_without_change_qkv_block_ordered_qkv_round_trips(tmp_path: Path) -> None:
    """An AutoFormer supernet trained without --change_qkv keeps q, k, v as plain blocks of the
    embed width (head width = embed / heads): written under AutoFormer's names from a supernet of
    this project, it converts back to the same outputs; a narrower embed choice is refused."""
    space = SearchSpace.from_dict({"embed_dim": [32], "depth": [1, 2], "num_heads": [2], "mlp_ratio": [2, 3],
                                   "patch_size": [8], "img_size": 32, "num_classes": 5, "head_dim": 16,
                                   "rel_pos": True, "pool": "cls"})  # fmt: skip
    ours = Supernet(space, ln_eps=AF_LN_EPS).eval()
    renames = {"patch_embed.weight": "patch_embed_super.proj.weight", "patch_embed.bias": "patch_embed_super.proj.bias",
               "norm1": "attn_layer_norm", "norm2": "ffn_layer_norm", "mlp.fc1": "fc1", "mlp.fc2": "fc2",
               "rel_pos_k.table": "rel_pos_embed_k.embeddings_table", "rel_pos_v.table": "rel_pos_embed_v.embeddings_table"}  # fmt: skip
    af = {}
    for key, value in ours.state_dict().items():
        for a, b in renames.items():
            key = key.replace(a, b)
        af[key] = value.clone()
    torch.save({"model": af, "args": argparse.Namespace(gp=False, change_qkv=False)}, tmp_path / "af.pth")
    model, got_space, flags = load_autoformer_supernet(tmp_path / "af.pth", choices=space)
    assert flags == AutoFormerFlags(gp=False, change_qkv=False) and got_space.head_dim == 16
    x = torch.randn(2, 3, 32, 32)
    for cfg in (space.min_config(), space.max_config()):
        ours.set_active(cfg)
        model.set_active(cfg)
        with torch.no_grad():
            assert torch.equal(model(x), ours(x))
    with pytest.raises(ConfigError, match="without --change_qkv"):
        load_autoformer_supernet(tmp_path / "af.pth", choices=space.replace(embed_dim=(16, 32)))
