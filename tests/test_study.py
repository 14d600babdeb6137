"""The study's selection rules, by hand: attribution partitions at matched size, transfer,
and where the training-dynamics points come from."""

import json
from types import SimpleNamespace

import pytest

from recall.contract import Fact, QAItem
from recall.evaluation import ProgressEvaluation, progress_steps
from recall.staging import weights_digest
from recall.study import attribution_subsets, transfer_items


def _item(i, split="train", relation="birth_city", dataset="toy"):
    return QAItem(id=i, dataset=dataset, question=f"q {i} ?", answers=("a",),
                  fact=Fact(subject=i, relation=relation), split=split)


PARTS = {"inaccessible": (0, 0), "partial": (1, 64), "high": (65, 128)}


def test_attribution_partitions_by_count_at_matched_size():
    counts = [0, 0, 0, 0, 0, 1, 64, 30, 65, 128, 100]  # 5 inaccessible, 3 partial, 3 high
    train = [_item(f"t{i}") for i in range(len(counts))]
    access = {it.id: c for it, c in zip(train, counts)}
    subsets = attribution_subsets(train, access, PARTS, size=0, seed=0)
    assert {n: len(s) for n, s in subsets.items()} == {"inaccessible": 3, "partial": 3, "high": 3}
    assert {it.id for it in subsets["partial"]} == {"t5", "t6", "t7"}  # 1, 64 and 30: bounds inclusive
    assert {it.id for it in subsets["high"]} == {"t8", "t9", "t10"}
    assert {access[it.id] for it in subsets["inaccessible"]} == {0}
    # Seeded, and each partition draws from its own stream.
    assert subsets == attribution_subsets(train, access, PARTS, size=0, seed=0)
    fixed = attribution_subsets(train, access, PARTS, size=2, seed=1)
    assert {n: len(s) for n, s in fixed.items()} == {"inaccessible": 2, "partial": 2, "high": 2}


def test_attribution_refuses_what_it_cannot_match():
    train = [_item("a"), _item("b")]
    with pytest.raises(ValueError, match=r"attribution.size 2 exceeds partitions \{'low': 1, 'high': 1\}"):
        attribution_subsets(train, {"a": 0, "b": 100}, {"low": (0, 0), "high": (65, 128)}, 2, 0)
    with pytest.raises(ValueError, match=r"partitions \['partial'\] hold no RL-train item"):
        attribution_subsets(train, {"a": 0, "b": 100}, PARTS, 0, 0)
    with pytest.raises(ValueError, match="no accessibility for 1 RL-train items"):
        attribution_subsets(train, {"a": 0}, PARTS, 0, 0)
    # Fewer matched items than one GRPO step's prompts: named, not TRL's max_steps error.
    with pytest.raises(ValueError, match=r"matched size 1 is below attribution.prompts_per_step "
                                         r"32, .* partition sizes \{'low': 1, 'high': 1\}"):
        attribution_subsets(train, {"a": 0, "b": 100}, {"low": (0, 0), "high": (65, 128)}, 0, 0,
                            prompts_per_step=32)


def test_transfer_selects_families():
    items = [_item("r1", "train", "birth_city"), _item("r2", "train", "university"),
             _item("s1", "test", "employer"), _item("t1", "test", "field"),
             _item("t2", "test", "university"), _item("v1", "val", "field")]
    train, src, tgt = transfer_items(items, "relation", ["birth_city", "employer"],
                                     ["university", "field"])
    assert [it.id for it in train] == ["r1"] and [it.id for it in src] == ["s1"]
    assert [it.id for it in tgt] == ["t1", "t2"]
    with pytest.raises(ValueError, match=r"share \['field'\]"):
        transfer_items(items, "relation", ["field"], ["field", "university"])
    with pytest.raises(ValueError, match="no source train items"):
        transfer_items(items, "relation", ["employer"], ["field"])
    by_dataset = [_item("n", "train", dataset="nq_open"), _item("n2", "test", dataset="nq_open"),
                  _item("s", "test", dataset="simpleqa")]
    assert [it.id for it in transfer_items(by_dataset, "dataset", ["nq_open"], ["simpleqa"])[2]] == ["s"]


def test_progress_steps_cover_training_evenly():
    assert progress_steps(25, 4) == {6: 0.25, 12: 0.5, 19: 0.75, 25: 1.0}
    assert progress_steps(2, 4) == {1: 0.25, 2: 0.75}  # fewer steps than points: no duplicates
    with pytest.raises(ValueError):
        progress_steps(0, 4)


def test_progress_evaluation_takes_its_last_point_from_the_final_evaluation():
    items = [_item("a", "train"), _item("b", "test")]
    progress = ProgressEvaluation(items, judge=None, tokenizer=None, rollout=None, points=4)
    progress.on_train_begin(None, SimpleNamespace(max_steps=25), None)
    assert progress._at == {6: 0.25, 12: 0.5, 19: 0.75}  # the final step is not evaluated here
    progress.rows = [{"progress": 0.25, "step": 6, "split": "test", "accuracy": 0.5}]
    rows = progress.finish({"train": 0.7, "val": 0.6, "test": 0.8})
    assert rows[1:] == [{"progress": 1.0, "step": 25, "split": "test", "accuracy": 0.8},
                        {"progress": 1.0, "step": 25, "split": "train", "accuracy": 0.7}]
    # Runs without dynamics (attribution, transfer) get none, not a lone final point.
    none = ProgressEvaluation(items, judge=None, tokenizer=None, rollout=None, points=0)
    none.on_train_begin(None, SimpleNamespace(max_steps=25), None)
    assert none._at == {} and none.finish({"test": 0.8}) == []


class _Model:
    """A stand-in policy: `save_pretrained` writes which step's weights it holds."""

    def __init__(self):
        self.step, self.training = 0, True

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def save_pretrained(self, path):
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.safetensors").write_text(f"step {self.step}")


def test_checkpoint_is_chosen_on_val_never_on_test(tmp_path, monkeypatch):
    import shutil

    import recall.evaluation as evaluation

    # val peaks at step 10 of 20, test keeps rising: the choice must follow val
    scripted = {5: {"val": 0.5, "test": 0.5}, 10: {"val": 0.7, "test": 0.6},
                15: {"val": 0.6, "test": 0.7}, 20: {"val": 0.65, "test": 0.8}}
    model = _Model()
    monkeypatch.setattr(evaluation, "policy_accuracy", lambda *a, **k: (scripted[model.step], [2]))
    items = [_item("v", "val"), _item("t", "test")]
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    out.mkdir()
    (out / "tokenizer.json").write_text("the study's tokenizer")
    progress = ProgressEvaluation(items, None, None, None, points=4, select_dir=out / "_best")
    progress.on_train_begin(None, SimpleNamespace(max_steps=20), None)
    assert progress._at == {5: 0.25, 10: 0.5, 15: 0.75, 20: 1.0}  # the last step too
    args, saved = SimpleNamespace(output_dir=str(checkpoints)), []
    for step in (5, 10, 15, 20):
        model.step = step
        state = SimpleNamespace(global_step=step)
        control = progress.on_step_end(args, state, SimpleNamespace(should_save=False),
                                       model=model)
        if control.should_save:  # what the Trainer then does: its own save, then on_save
            model.save_pretrained(checkpoints / f"checkpoint-{step}")
            (checkpoints / f"checkpoint-{step}" / "optimizer.pt").write_text("optimizer")
            progress.on_save(args, state, control)
            saved.append(step)
    (out / "model.safetensors").write_text("step 20")  # the trainer saves the final weights
    assert saved == [5, 10]  # each new best on val before the last step, nothing else
    shutil.rmtree(checkpoints)  # the trainer rotates and finally deletes its checkpoints
    chosen = progress.restore_best(out)
    assert {k: chosen[k] for k in ("step", "progress", "val", "last_step")} == \
        {"step": 10, "progress": 0.5, "val": 0.7, "last_step": 20}
    assert (out / "model.safetensors").read_text() == "step 10" and not (out / "_best").exists()
    assert chosen["kept_weights"] == chosen["weights"] == weights_digest(out)
    assert chosen["weights"] != chosen["last_weights"]
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "tokenizer.json"]
    assert progress.items_per_rank == [2]
    # the last step was evaluated in training: finish adds no second final point
    rows = progress.finish({"val": 0.7, "test": 0.6})
    assert [r["step"] for r in rows if r["split"] == "test"] == [5, 10, 15, 20]


def test_keeping_a_checkpoint_needs_whole_weights(tmp_path):
    from recall.evaluation import keep_model_files

    sharded = tmp_path / "checkpoint-5"
    (sharded / "pytorch_model_fsdp_0").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="FULL_STATE_DICT"):
        keep_model_files(sharded, tmp_path / "best")


def test_choosing_on_val_needs_val_items(tmp_path):
    with pytest.raises(ValueError, match="needs val items"):
        ProgressEvaluation([_item("t", "test")], None, None, None, 4, select_dir=tmp_path)


def test_a_seed_stamp_moves_with_every_input_but_the_seed_list(micro_params, tmp_path):
    import dataclasses

    from recall.config import with_overrides
    from recall.judge.rules import RuleJudge
    from recall.study import finished_summary, seed_stamp

    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")
    items = [QAItem("a", "toy", "q?", ("x",), None, "train")]

    def stamp(params=micro_params, seed=0, inputs=(items,)):
        return seed_stamp(params, "sft", seed, base, RuleJudge(), None, list(inputs))
    first = stamp()
    assert stamp(with_overrides(micro_params, {"study.seeds": [0, 1, 2]})) == first
    assert stamp(with_overrides(micro_params, {"sft.learning_rate": 1e-3})) != first
    assert stamp(seed=1) != first
    assert stamp(inputs=([dataclasses.replace(items[0], answers=("y",))],)) != first
    (base / "model.safetensors").write_bytes(b"other weights")
    assert stamp() != first

    run, model = tmp_path / "runs/seed0", tmp_path / "models/seed0"
    run.mkdir(parents=True)
    assert finished_summary(run, model, first) is None  # no marker
    (run / "finished.json").write_text(json.dumps({"stamp": first, "summary": {"n": 1}}))
    assert finished_summary(run, model, first) is None  # no model
    model.mkdir(parents=True)
    assert finished_summary(run, model, first) == {"n": 1}
    assert finished_summary(run, model, "other") is None
    (run / "finished.json").write_text('{"stamp": "')  # cut short while written
    assert finished_summary(run, model, first) is None


def test_seeds_left_out_are_pruned(tmp_path):
    from recall.study import OutputDirs, prune_seeds

    out = OutputDirs(tmp_path / "models", tmp_path / "runs", tmp_path / "ckpt")
    for root in (out.models, out.runs):
        for s in (0, 1, 2):
            (root / f"seed{s}").mkdir(parents=True)
    (out.runs / "dynamics.csv").write_text("x")
    prune_seeds(out, [1])
    assert sorted(p.name for p in out.models.iterdir()) == ["seed1"]
    assert sorted(p.name for p in out.runs.iterdir()) == ["dynamics.csv", "seed1"]
