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


def test_a_sweep_trial_launches_the_cli_module_on_its_own_port():
    """A sweep worker's trial (recall.sweep.train): `-m recall.cli ... sweep trial`, at the
    worker's own rendezvous port, parsed by accelerate's parser and then by recall's."""
    from accelerate.commands.launch import launch_command_parser

    from recall.cli import build_parser

    trial = ["-m", "recall.cli", "--params", "/tmp/t/params.yaml", "sweep", "trial",
             "--trial-id", "3", "--run-id", "abc", "--out", "/tmp/t"]
    args = launch_command_parser().parse_args(launch_command(_paper_compute(), GPU, trial,
                                                             port=41234)[3:])
    assert args.module and args.training_script == "recall.cli"
    assert (args.num_processes, args.main_process_port) == (8, 41234)
    parsed = build_parser().parse_args(args.training_script_args)
    assert (parsed.action, parsed.trial_id, parsed.run_id) == ("trial", 3, "abc")


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


# The calls that train a model. A pipeline making one must first hand itself to the launcher,
# or `compute.num_processes: 8` trains a 7B model unsharded on one GPU.
TRAINING_CALLS = {"run_seed", "train_method", "train_rl", "train_grpo", "run_sft", "run_dpo",
                  "run_rft", "train_sft", "pretrain", "pretrain_on_world", "train_judge"}
# Toy-only stages that train a tiny model from scratch in one process; in the paper profile
# base_model stages a hub model and the judge is a served 72B model, so neither trains.
SINGLE_PROCESS = {"base_model": "toy pretraining (models.base.source: pretrain)",
                  "judge": "the toy judge (a 2-layer classifier)"}


def trains_without_launcher(source: str) -> list[str]:
    """The training calls in `source` that no earlier `relaunch_if_needed(...)` guards."""
    import ast

    calls = sorted((node.lineno, node.func.id) for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name))
    launched = next((line for line, name in calls if name == "relaunch_if_needed"), None)
    return [f"line {line}: {name}()" for line, name in calls
            if name in TRAINING_CALLS and (launched is None or line < launched)]


def test_every_pipeline_that_trains_goes_through_the_launcher():
    trained = set()
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        unguarded = trains_without_launcher(path.read_text())
        if path.stem in SINGLE_PROCESS:
            continue
        if "relaunch_if_needed" in path.read_text():
            trained.add(path.stem)
        assert not unguarded, f"pipelines/{path.name} trains without the launcher: {unguarded}"
    assert trained >= {"train", "attribution", "transfer", "bases"}
    # The check itself: a stage that trains first and launches after is caught.
    late = "def main():\n    run_seed(1)\n    relaunch_if_needed(p, __file__)\n"
    assert trains_without_launcher(late) == ["line 2: run_seed()"]
    assert trains_without_launcher("def main():\n    pretrain_on_world(w)\n") == \
        ["line 2: pretrain_on_world()"]
    for name in SINGLE_PROCESS:  # the exemptions still train (else they should go)
        assert trains_without_launcher((ROOT / "pipelines" / f"{name}.py").read_text())
