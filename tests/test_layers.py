"""The packages form layers, and imports only point down (or within a layer):

    common                         errors, atomic files, strict YAML/config, logging
    search_space (specs)           SubnetConfig, SearchSpace, counting: what a subnet is
    memory_model                   bytes as functions of a config (numpy; torch only in the
                                   profiler, the graph lowering and int8 calibration)
    search_space (models)          super-modules, Supernet, StaticViT, SVD init, its CLI
    training                       data, loops, checkpoints
    search                         space evolution, subnet search, the shared constraint
    deploy, baselines              what leaves the codebase; the seed models
    scripts, bench                 entry points and benchmarks

Every import in every module is read (function-level ones included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPEC_MODULES = ("search_space.config", "search_space.space", "search_space.counting")
LAYERS = [  # (layer, module prefixes), lowest first
    ("common", ("common",)),
    ("specs", SPEC_MODULES),
    ("memory_model", ("memory_model",)),
    ("models", ("search_space",)),
    ("training", ("training",)),
    ("search", ("search",)),
    ("deploy", ("deploy", "baselines")),
    ("entry", ("supernet_train", "evolve_space", "evolution_search", "pipeline", "bench", "tests")),
]
PROJECT = {p.split(".")[0] for _, prefixes in LAYERS for p in prefixes}


def layer_of(module: str) -> int:
    """Index of the most specific layer naming ``module`` (``search_space.config`` is a spec)."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every project import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, m) for line, m in out if m.split(".")[0] in PROJECT]


def _resolve(name: str) -> str:
    """``pkg.mod.Symbol`` -> ``pkg.mod`` (the deepest importable module file)."""
    parts = name.split(".")
    while parts:
        base = REPO.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def source_files() -> list[Path]:
    roots = [REPO / p for p in PROJECT if (REPO / p).is_dir()]
    files = [f for r in roots for f in r.rglob("*.py") if ".venv" not in f.parts]
    return sorted(files + [REPO / f"{m}.py" for m in PROJECT if (REPO / f"{m}.py").is_file()])


def test_the_layer_table_names_every_package() -> None:
    for f in source_files():
        assert layer_of(module_name(f)) >= 0, f"{module_name(f)} is in no layer"
    assert layer_of("search_space.config") < layer_of("memory_model") < layer_of("search_space.supernet")


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for f in source_files():
        me = module_name(f)
        for line, target in imports(f):
            target = _resolve(target)
            if layer_of(target) > layer_of(me):
                upward.append(
                    f"{f.relative_to(REPO)}:{line} imports {target} "
                    f"({LAYERS[layer_of(me)][0]} -> {LAYERS[layer_of(target)][0]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    "modules",
    [
        ["memory_model"],
        ["memory_model.batch", "memory_model.schedules", "memory_model.mcu", "memory_model.tflm"],
        ["memory_model.int8.executor", "memory_model.int8.quant", "memory_model.table"],
        ["search_space.config", "search_space.space", "search_space.counting"],
    ],
)
def test_the_config_level_code_runs_without_torch(modules: list[str]) -> None:
    """The memory model and the space specs are numpy code: importing them loads no torch."""
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds function-level imports too (what the layer test relies on)."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from search.constraint import MemoryConstraint\n    import training.loop\n")
    assert [m for _, m in imports(f)] == ["search.constraint.MemoryConstraint", "training.loop"]
    assert layer_of(_resolve("search.constraint.MemoryConstraint")) > layer_of("memory_model.mcu")
