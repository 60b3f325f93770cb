"""DDP: two CPU processes (gloo) follow the same loss curve as one process with the same global batch."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from bench.runner import train_suite

# evaluations at every update with a stopping rule that does not fire: rank 0 decides at each and tells the other
TINY = {"image_size": [64, 96], "max_iters": 3, "batch_size": 2, "eval_every_iters": 1, "stopping": "val-plateau",
        "patience_iters": 5, "deterministic": True}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, root, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"], variants=["natural-frequency"],
              data_root=root, results=out / "results", checkpoints=out / "ckpt", overrides=dict(TINY),
              device="cpu", log=lambda m: None)
    torch.distributed.destroy_process_group()


def _record(folder):
    (path,) = list(folder.rglob("run.json"))
    return json.loads(path.read_text())


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(fake_root, tmp_path):
    torch.set_num_threads(1)
    train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"], variants=["natural-frequency"],
              data_root=fake_root, results=tmp_path / "one" / "results", checkpoints=tmp_path / "one" / "ckpt",
              overrides=dict(TINY), device="cpu", log=lambda m: None)
    mp.spawn(_worker, args=(2, _free_port(), fake_root, tmp_path / "two"), nprocs=2, join=True)
    one, two = _record(tmp_path / "one"), _record(tmp_path / "two")
    l1 = [v for _, v in one["curves"]["loss"]]
    l2 = [v for _, v in two["curves"]["loss"]]
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert len(l1) == len(l2) == 3
    assert l1 == pytest.approx(l2, rel=1e-4)
    assert l1[0] != l1[-1]  # the weights moved
    assert one["test"]["G"] == pytest.approx(two["test"]["G"], abs=0.5)
    assert len(list((tmp_path / "two" / "results").rglob("run.json"))) == 1  # only rank 0 records
