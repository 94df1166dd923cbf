"""Sharding inference across torchrun processes: each rank's share, and folders split across two."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from i2i.cli import main
from i2i.shard import Shard, current_shard

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n, world_size", [(0, 3), (2, 3), (7, 3), (12, 4), (5, 1)])
def test_shares_cover_everything_exactly_once(n, world_size):
    shards = [Shard(rank, world_size) for rank in range(world_size)]
    taken = [item for shard in shards for item in shard.take(list(range(n)))]
    assert sorted(taken) == list(range(n))
    blocks = [shard.range(n) for shard in shards]
    assert [i for block in blocks for i in block] == list(range(n))  # contiguous, in rank order
    sizes = [len(block) for block in blocks]
    assert max(sizes) - min(sizes) <= (1 if n else 0)


def test_take_is_round_robin_by_index():
    assert Shard(1, 3).take("abcdefg") == ["b", "e"]
    assert Shard(0, 3).range(7) == range(0, 3) and Shard(2, 3).range(7) == range(5, 7)


def test_current_shard_reads_torchrun_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    alone = current_shard()
    assert alone == Shard(0, 1, 0) and alone.is_main
    alone.barrier()  # one process: returns at once, no process group
    assert alone.gather({"a": 1}) == [{"a": 1}]
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    shard = current_shard()
    assert shard == Shard(5, 8, 1, 4) and not shard.is_main
    with pytest.raises(Exception):
        shard.rank = 0  # frozen


def test_importing_shard_does_not_import_torch():
    code = "import sys, i2i.shard; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def _tiny_upscaler(path: Path) -> None:
    import torch

    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.models import create_model

    torch.manual_seed(0)
    kwargs = dict(num_feat=4, num_conv=1, scale=2)
    save_generator(path, create_model("srvgg_compact", **kwargs),
                   GeneratorInfo(model="srvgg_compact", kwargs=kwargs, value_range=(0.0, 1.0), scale=2, task="srgan"))


def _photos(folder: Path, count: int) -> list[Path]:
    from skimage import data

    from i2i.data.io import write_image

    image = data.astronaut()
    paths = []
    for i in range(count):
        path = folder / ("sub" if i % 2 else "") / f"p{i}.png"
        write_image(path, np.ascontiguousarray(image[i * 9 : i * 9 + 12 + i, i * 7 : i * 7 + 10]))
        paths.append(path)
    return paths


def test_torchrun_two_processes_write_every_output_once(tmp_path):
    """Two gloo ranks on the CPU: the union of their outputs is the single-process run's."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    model = tmp_path / "tiny.safetensors"
    _tiny_upscaler(model)
    inputs = tmp_path / "in"
    _photos(inputs, 5)
    common = ["upscale", "-m", str(model), str(inputs)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    single = CliRunner().invoke(main, [*common, str(tmp_path / "one")])
    assert single.exit_code == 0, single.output
    shared = subprocess.run(
        ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "i2i", *common, str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.count("5 written, 0 skipped (exist), 0 failed.") == 1  # rank 0 prints the total
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert len(one) == 5 and one == two  # every output once, no temporary files left
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()
