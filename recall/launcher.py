"""Run a training stage in one process or distributed, from the same DVC command.

`dvc repro train@grpo` runs `python pipelines/train.py grpo`. With
`compute.num_processes * compute.num_machines` above 1 that script hands itself to a
distributed launcher, which starts one copy per process with the rendezvous variables set:

- on GPUs, `accelerate launch` with `compute.accelerate_config` (FSDP2 or ZeRO-3, files in
  configs/accelerate/), so the trainers shard the model as the file says;
- on CPU, `torchrun` (gloo): accelerate launches several CPU processes only through MPI,
  and the same trainers then run as plain DDP, which is what the CPU tests exercise.

A judge served by the stage itself would be started once per rank, so the launch runs
under `run_with_judge`: one server, its URL in the environment of every rank.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from recall.compute import ComputeConfig, Resolved, world_size

LAUNCHED_ENV = "RECALL_LAUNCHED"  # set in the children, so they train instead of relaunching


def needs_launch(cfg: ComputeConfig) -> bool:
    """More than one training process asked for, and this is not one of them yet."""
    return cfg.num_processes * cfg.num_machines > 1 and not os.environ.get(LAUNCHED_ENV) \
        and world_size() == 1


def launch_command(cfg: ComputeConfig, res: Resolved, script: Sequence[str],
                   port: int | None = None) -> list[str]:
    """The launcher command line that runs `script` (a path and its arguments, or `-m` and a
    module) on every rank.

    Multi-node: the rank of this node and the master's address come from the environment
    the cluster sets (NODE_RANK or JOB_COMPLETION_INDEX, MASTER_ADDR, MASTER_PORT). `port`:
    this launch's own rendezvous port (one node; several launches side by side).
    """
    node_rank = os.environ.get("NODE_RANK") or os.environ.get("JOB_COMPLETION_INDEX") or "0"
    master = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = str(port or os.environ.get("MASTER_PORT", "29500"))
    if res.device == "cpu":
        return [sys.executable, "-m", "torch.distributed.run",
                "--nproc_per_node", str(cfg.num_processes), "--nnodes", str(cfg.num_machines),
                "--node_rank", node_rank, "--master_addr", master, "--master_port", port,
                *script]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.accelerate_config:
        cmd += ["--config_file", cfg.accelerate_config]
    else:
        cmd += ["--multi_gpu"]
    # The file's process and machine counts are defaults; params decide.
    cmd += ["--num_processes", str(cfg.num_processes * cfg.num_machines),
            "--num_machines", str(cfg.num_machines), "--machine_rank", node_rank,
            "--main_process_ip", master, "--main_process_port", port,
            "--mixed_precision", "bf16" if res.bf16 else "no"]
    return [*cmd, *script]


def relaunch_if_needed(params, script: str) -> None:
    """The first line of every stage that trains: with more than one training process asked
    for, run this stage's script (`script`, with this process's arguments) under the
    launcher and exit with its code; otherwise, or in a launched rank, return."""
    if needs_launch(params.compute):
        sys.exit(relaunch(params, [script, *sys.argv[1:]]))


def relaunch(params, script: Sequence[str]) -> int:
    """Run `script` under the distributed launcher with one shared judge; returns its exit
    code. The caller exits with it."""
    from recall.compute import resolve
    from recall.judge.server import run_with_judge

    cmd = launch_command(params.compute, resolve(params.compute), script)
    os.environ[LAUNCHED_ENV] = "1"
    print(f"recall: launching {params.compute.num_processes * params.compute.num_machines} "
          f"training processes: {' '.join(cmd)}", flush=True)
    return run_with_judge(params.judge, cmd, params.compute)
