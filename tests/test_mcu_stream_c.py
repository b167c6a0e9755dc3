"""The C operator library's streamed input (``--input stream``): the generated model pulls one row
of patches at a time through ``mcu_read_rows``, in an arena of exactly the streamed `mcu` peak,
bit-exact with the numpy executor's streamed run on the host and under QEMU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from deploy.mcu import GenOptions, Steps, deploy, generate, get_board
from deploy.mcu.build import HOST_CFLAGS, build_host, run_host
from deploy.mcu.codegen import KERNEL_FILES
from memory_model.int8 import random_quant_vit, run_int8
from memory_model.mcu import align4, mcu_peak_bytes, stream_band_bytes
from search_space.config import SubnetConfig
from training.digits import load_digits_split

ROOT = Path(__file__).resolve().parents[1]
# 30 px / patch 7: a 5 x 5 grid over 35 px, the last row of patches 2 image rows + zero padding;
# 32 px / patch 8: the patch divides the image, every band holds 8 full rows.
SUBNETS = {
    "padded_p7_cls_lowrank": dict(embed_dim=16, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=7,
                                  img_size=30, head_dim=8, rank_ratio=0.5),
    "divisor_p8_avg_relu": dict(embed_dim=12, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 1.0), patch_size=8,
                                img_size=32, head_dim=4, pool="avg", act="relu"),
}  # fmt: skip
IMAGES = 36


def _cfg(name: str) -> SubnetConfig:
    return SubnetConfig(num_classes=10, **SUBNETS[name])


def _streamed_reference(q, images: np.ndarray, sram: bool) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The numpy executor's streamed logits in an arena of the streamed peak, and its row requests."""
    peak = mcu_peak_bytes(q.cfg, sram, "stream")
    calls: list[tuple[int, int]] = []
    logits = []
    for image in images:

        def source(y0: int, y1: int, image=image) -> np.ndarray:
            calls.append((y0, y1))
            return image[y0:y1]

        res = run_int8(q, None, sram, arena_bytes=peak, input="stream", source=source)
        assert res.high_water_bytes == peak
        logits.append(res.logits_int32)
    return np.array(logits), calls


@pytest.mark.parametrize("name", sorted(SUBNETS))
@pytest.mark.parametrize("weights_in_sram", [True, False])
def test_host_stream_bit_exact_in_the_streamed_peak(name, weights_in_sram, tmp_path) -> None:
    cfg = _cfg(name)
    q = random_quant_vit(cfg, np.random.default_rng(7))
    images = load_digits_split("test", cfg.img_size)[0][:IMAGES]
    gen = generate(q, tmp_path / "tree", GenOptions(weights_in_sram=weights_in_sram, input="stream"))
    whole_peak = mcu_peak_bytes(cfg, weights_in_sram)
    assert gen.plan.arena_bytes == mcu_peak_bytes(cfg, weights_in_sram, "stream") < whole_peak
    band = next(p for p in gen.plan.ops if p.op.kind == "patch_embed_stream")
    assert band.op.live["I"] == align4(stream_band_bytes(cfg)) < cfg.img_size**2 * cfg.in_chans
    model_c = (gen.out_dir / "model.c").read_text()
    assert "mcu_patch_embed_band(" in model_c and "mcu_model_input" not in model_c
    logits, _ = run_host(build_host(gen.out_dir), images)
    ref, _ = _streamed_reference(q, images, weights_in_sram)
    assert logits.shape == (IMAGES, 10)
    np.testing.assert_array_equal(logits, ref)
    assert len({tuple(r) for r in ref}) > IMAGES // 2  # the images really differ in their logits
    whole = run_int8(q, images[0], weights_in_sram).logits_int32
    np.testing.assert_array_equal(whole, ref[0])  # streaming changes where the pixels are, not the result


RECORDER_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "mcu_kernels.h"
#include "model.h"
static uint8_t image[MCU_INPUT_BYTES];
void mcu_read_rows(int y0, int y1, uint8_t *dst) {
    printf("rows %d %d\n", y0, y1);
    memcpy(dst, image + y0 * MCU_IMG_SIZE * MCU_IN_CHANS, (size_t)((y1 - y0) * MCU_IMG_SIZE * MCU_IN_CHANS));
}
int main(void) {
    const int32_t *logits;
    int c;
    if (fread(image, 1, MCU_INPUT_BYTES, stdin) != MCU_INPUT_BYTES) return 1;
    logits = mcu_model_run();
    for (c = 0; c < MCU_NUM_CLASSES; c++) printf(c ? " %ld" : "l %ld", (long)logits[c]);
    printf("\n");
    return 0;
}
"""


def test_band_kernel_requests_the_executors_rows(tmp_path) -> None:
    """An application's own source sees the row requests the numpy executor makes, in order."""
    cfg = _cfg("padded_p7_cls_lowrank")
    q = random_quant_vit(cfg, np.random.default_rng(3))
    image = load_digits_split("test", cfg.img_size)[0][5]
    tree = generate(q, tmp_path / "tree", GenOptions(input="stream")).out_dir
    (tree / "main_rec.c").write_text(RECORDER_MAIN)
    srcs = [n for n in KERNEL_FILES if n.endswith(".c")] + ["model.c", "main_rec.c"]
    subprocess.run(["cc", *HOST_CFLAGS, "-o", "rec", *srcs], cwd=tree, check=True, capture_output=True)
    out = subprocess.run(["./rec"], cwd=tree, input=image.tobytes(), capture_output=True, check=True).stdout
    lines = out.decode().splitlines()
    rows = [tuple(int(v) for v in ln.split()[1:]) for ln in lines if ln.startswith("rows ")]
    ref, calls = _streamed_reference(q, image[None], True)
    assert rows == calls == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    assert [int(v) for v in lines[-1].split()[1:]] == ref[0].tolist()


def test_qemu_stream_run_equals_host_and_numpy(tmp_path) -> None:
    """One tiny streamed subnet on the emulated Cortex-M7, rows read by semihosting seeks."""
    cfg = _cfg("padded_p7_cls_lowrank")
    q = random_quant_vit(cfg, np.random.default_rng(11))
    images = load_digits_split("test", cfg.img_size)[0][:3]
    steps = Steps(host_images=images, check_images=3, qemu_images=images, board=get_board("stm32f746"))
    report = deploy(q, tmp_path / "out", GenOptions(input="stream"), steps)
    assert report["input"] == "stream"
    assert report["host"]["equal_to_numpy"] and report["qemu"]["equal_to_host"]
    assert report["arena_bytes"] == report["analytic_mcu_peak_bytes"] == mcu_peak_bytes(cfg, True, "stream")
    np.testing.assert_array_equal(np.array(report["qemu"]["logits"]), _streamed_reference(q, images, True)[0])
    assert report["board"]["sram_bytes"] >= report["arena_bytes"]
    assert report["qemu"]["instructions_per_inference"] > 10_000


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "deploy.mcu", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_cli_stream_host_only_and_bad_input_mode(tmp_path) -> None:
    cfg = _cfg("divisor_p8_avg_relu")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    base = ["--subnet", "s.yaml", "--random-weights", "2", "--no-board", "--images", "8", "--check", "8"]
    proc = _cli(*base, "--input", "stream", "--out", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bit-identical to the numpy executor on 8" in proc.stdout
    assert f"(= analytic mcu peak {mcu_peak_bytes(cfg, True, 'stream'):,} B)" in proc.stdout
    assert "input streamed one row of patches at a time" in proc.stdout
    bad = _cli(*base, "--input", "camera", "--out", "bad", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: unknown mcu input mode 'camera'; choose one of ['whole', 'stream']"
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.tmp-*"))
