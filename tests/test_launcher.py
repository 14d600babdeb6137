"""The launcher's command lines, parsed by the real launchers' own parsers (the GPU branch
cannot run here), and the accelerate configs it points at, loaded by accelerate itself."""

import dataclasses

import pytest
from conftest import ROOT

from recall.compute import Resolved
from recall.launcher import launch_command, needs_launch

GPU = Resolved("cuda", bf16=True, gradient_checkpointing=True, attn_implementation="sdpa")
CPU = Resolved("cpu", bf16=False, gradient_checkpointing=False, attn_implementation="sdpa")
SCRIPT = ["pipelines/train.py", "grpo", "--params", "params.yaml"]


def _paper_compute():
    from recall.config import load_params

    return load_params(ROOT / "params-paper.yaml").compute


def test_gpu_command_is_accelerate_launch_with_the_sharding_config(monkeypatch):
    from accelerate.commands.launch import launch_command_parser

    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "trainer-0.trainer")
    cfg = dataclasses.replace(_paper_compute(), num_machines=2)
    cmd = launch_command(cfg, GPU, SCRIPT)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert args.config_file == "configs/accelerate/fsdp2.yaml"
    assert (args.num_processes, args.num_machines, args.machine_rank) == (16, 2, 1)
    assert args.main_process_ip == "trainer-0.trainer" and args.mixed_precision == "bf16"
    assert [args.training_script, *args.training_script_args] == SCRIPT


def test_cpu_command_is_torchrun():
    from torch.distributed.run import get_args_parser

    cfg = dataclasses.replace(_paper_compute(), num_processes=2, accelerate_config="")
    cmd = launch_command(cfg, CPU, SCRIPT)
    args = get_args_parser().parse_args(cmd[3:])
    assert (args.nproc_per_node, args.nnodes) == ("2", "1")
    assert [args.training_script, *args.training_script_args] == SCRIPT


@pytest.mark.parametrize("name, kind, section", [("fsdp2", "FSDP", "fsdp_config"),
                                                 ("zero3", "DEEPSPEED", "deepspeed_config")])
def test_accelerate_configs_load_as_bf16_sharding(name, kind, section):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / f"configs/accelerate/{name}.yaml"))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    assert getattr(config, section)  # the sharding settings are there, not defaults


def test_launch_only_from_the_outer_process(monkeypatch):
    cfg = dataclasses.replace(_paper_compute(), num_processes=2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RECALL_LAUNCHED", raising=False)
    assert needs_launch(cfg)
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rank the launcher started
    assert not needs_launch(cfg)
    assert not needs_launch(dataclasses.replace(cfg, num_processes=1))
