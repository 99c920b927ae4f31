"""DDP: two CPU processes under torchrun (gloo) train the tiny cwa-msn preset together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from _train_fakes import FakeDataset
    from cellbench.train.loop import train
    from cellbench.train.presets import resolve

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    seen = []
    import cellbench.train.loop as loop
    original = loop.slice_batch
    def spy(batch, rank_, world, device):
        inputs = original(batch, rank_, world, device)
        seen.append(inputs.anchor_well.tolist())
        return inputs
    loop.slice_batch = spy
    result = train("cwa-msn", FakeDataset(), resolve("tiny", {{"max_steps": 6}}), seed=0,
                   out_dir=out, progress=False, health=False)
    h = hashlib.sha256()
    for value in result.method.parameters():  # BatchNorm running stats are per rank
        h.update(value.detach().float().numpy().tobytes())
    with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"seen": seen, "steps": result.steps_done,
                    "world": result.log["world_size"], "hash": h.hexdigest()}}, f)
    """
)


@pytest.mark.slow
def test_two_cpu_processes(tmp_path):
    tests_dir = str(Path(__file__).parent)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=tests_dir))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["steps"] == r1["steps"] == 6 and r0["world"] == 2
    assert r0["hash"] == r1["hash"]  # replicas (incl. the EMA target) stay identical
    # each rank trained on its own half of the global batch of 8 pairs
    for a, b in zip(r0["seen"], r1["seen"], strict=True):
        assert len(a) == len(b) == 4
    import _train_fakes

    from cellbench.data.sampling import PairSampler

    sampler = PairSampler(_train_fakes.FakeDataset(), cross_well=True, batch_size=8, seed=0)
    for step in range(6):
        full = sampler.batch_at(step).anchor_well_index.tolist()
        assert r0["seen"][step] + r1["seen"][step] == full
    # the checkpoint holds the synchronised model and loads into an encoder
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6
    from cellbench.methods.msn import create

    enc = create(checkpoint=str(out / "model.pt"))
    assert torch.isfinite(enc.embed(torch.randn(2, 3, 16, 16))).all()
