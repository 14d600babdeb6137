"""The plan's byte accounting against what one real TRL GRPO step holds (CPU, tiny model)."""

from transformers import TrainerCallback

from recall.compute import Resolved, load_model
from recall.footprint import GIB, shape, training_memory
from recall.judge.interface import reward_function
from recall.judge.rules import RuleJudge
from recall.training import rl_arguments, rl_dataset

CPU = Resolved("cpu", False, False, "sdpa")


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (tied weights count once)."""
    seen = {}
    for t in tensors:
        if t is not None:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


class Held(TrainerCallback):
    """After the first optimizer step (gradients not yet zeroed): what the policy holds."""

    def __init__(self):
        self.bytes = {}

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kw):
        if self.bytes:
            return
        params = list(model.parameters())
        moments = [v for s in optimizer.state.values() for k, v in s.items() if k != "step"]
        self.bytes = {"weights": storage_bytes(params),
                      "gradients": storage_bytes(p.grad for p in params),
                      "moments": storage_bytes(moments)}
        control.should_training_stop = True


def test_one_grpo_step_holds_what_the_plan_counts(tiny_model, tmp_path):
    from trl import GRPOTrainer

    from recall.engines import load_tokenizer

    model_dir, world, params = tiny_model
    items = [i for i in world.items if i.split == "train"][:16]
    held = Held()
    tokenizer = load_tokenizer(model_dir)
    assert params.grpo.beta > 0  # a reference model is built
    trainer = GRPOTrainer(model=load_model(model_dir, CPU), reward_funcs=[reward_function(
        RuleJudge(), 0.0)], args=rl_arguments(params.grpo, params.rollout, tmp_path, 0, CPU, ()),
        train_dataset=rl_dataset(items, tokenizer), processing_class=tokenizer,
        callbacks=[held])
    trainer.train()
    measured = {**held.bytes, "reference": storage_bytes(trainer.ref_model.parameters())}

    arch = shape(model_dir / "config.json")
    planned = training_memory(arch, 1, True, tokens=0, checkpointing=False)
    as_bytes = {"weights": planned["weights (fp32)"], "gradients": planned["gradients (fp32)"],
                "moments": planned["Adam moments (fp32)"],
                "reference": planned["reference model (fp32)"]}
    for part, gib in as_bytes.items():
        # within 1%: the accounting is per parameter, the storages are exact
        assert abs(measured[part] - gib * GIB) <= 0.01 * measured[part], (part, measured)
    # the reference model is built at the policy's load dtype (fp32), not bf16
    assert measured["reference"] == measured["weights"] == 4 * arch.parameters
    assert measured["moments"] == 8 * arch.parameters
