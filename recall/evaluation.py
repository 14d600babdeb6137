"""Evaluation during training: greedy accuracy of the live policy at step intervals.

Sweeps report it to Optuna for pruning; the study records it over normalised training
progress for every method (the paper's Figure 1).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

from transformers import TrainerCallback

from recall.compute import from_main, gather_to_main, is_main_process, rank, rank_share, world_size
from recall.config import RolloutConfig
from recall.contract import Judge, QAItem, SamplingSettings
from recall.engines import TransformersEngine
from recall.prompts import DIRECT
from recall.sampling import accuracy_by_split, greedy_settings, judged_records, raw_completions, sample_items
from recall.staging import weights_digest

# The checkpoint files that make a model directory (the Trainer's own save, whole or in
# safetensors shards); optimizer and scheduler state stay with the checkpoint.
_MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "config.json",
                "generation_config.json")


@contextlib.contextmanager
def grading_alone(judge: Judge) -> Iterator[None]:
    """The judge's whole concurrency for a block in which the main process alone grades
    (evaluation); during RL each rank grades its own rollouts with its share of it."""
    client = getattr(judge, "client", None)
    if client is None or not hasattr(client, "alone"):
        yield
        return
    with client.alone():
        yield


def policy_completions(model, tokenizer, items: Sequence[QAItem], settings: SamplingSettings,
                       max_batch_tokens: int) -> tuple[list[list[str]] | None, list[int]]:
    """The live policy's completions for `items`, split across the training processes.

    Each rank decodes `rank_share` of the items (a sharded model needs every rank in every
    forward pass, so the shares are padded to one length and cut into batches by the
    longest prompt of all items); the main process gets every item's completions in
    order, and how many real items each rank decoded. Other ranks get (None, [])."""
    engine = TransformersEngine.from_model(model, tokenizer, max_batch_tokens)
    engine.longest_prompt = engine.prompt_tokens([DIRECT.render(it.question, tokenizer)
                                                  for it in items])
    share = rank_share(len(items))
    raw = raw_completions(engine, [items[i] for i in share], settings)
    own = len(range(rank(), len(items), world_size()))
    gathered = gather_to_main((share, raw, own))
    if gathered is None:
        return None, []
    out: list = [None] * len(items)
    for indices, completions, _ in gathered:
        for i, c in zip(indices, completions):
            out[i] = c
    return out, [g[2] for g in gathered]


def policy_accuracy(model, tokenizer, judge: Judge, items: Sequence[QAItem],
                    rollout: RolloutConfig, max_batch_tokens: int
                    ) -> tuple[dict[str, float] | None, list[int]]:
    """Greedy accuracy per split of the live policy on `items` (main process; None on the
    others), with the items each rank decoded. An unjudged answer is an error."""
    settings = greedy_settings(rollout)
    with eval_mode(model):
        raw, shares = policy_completions(model, tokenizer, items, settings, max_batch_tokens)
    if raw is None:
        return None, []
    with grading_alone(judge):
        records, unjudged = judged_records(judge, items, raw, settings, "policy")
    if unjudged:
        raise RuntimeError(f"the judge gave no verdict on {unjudged} greedy answers")
    return accuracy_by_split(records), shares


def _model_files(directory: Path) -> list[Path]:
    return sorted({f for pattern in _MODEL_FILES for f in directory.glob(pattern)})


def keep_model_files(checkpoint: Path, dest: Path) -> None:
    """`checkpoint`'s model files into `dest` (replacing what was there) as hard links, so
    keeping the best checkpoint costs no second copy of a 30 GB model while the trainer
    rotates its checkpoints (a copy where links are impossible)."""
    import os
    import shutil

    files = _model_files(Path(checkpoint))
    if not any(f.suffix == ".safetensors" for f in files):
        raise RuntimeError(f"{checkpoint}: the trainer saved no *.safetensors weights to keep "
                           "as the best-on-val model (a sharded state dict? the accelerate "
                           "config must use fsdp_state_dict_type: FULL_STATE_DICT)")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in files:
        try:
            os.link(f, dest / f.name)
        except OSError:
            shutil.copy2(f, dest / f.name)


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """The live policy in eval mode for the block, back in its training mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def greedy_by_split(engine, judge: Judge, items: Sequence[QAItem],
                    rollout: RolloutConfig) -> dict[str, float]:
    """Greedy accuracy per split of `items`; an answer the judge could not grade is an error."""
    records, unjudged = sample_items(engine, judge, items, greedy_settings(rollout), "policy")
    if unjudged:
        raise RuntimeError(f"the judge gave no verdict on {unjudged} greedy answers")
    return accuracy_by_split(records)


class GreedyEvaluation(TrainerCallback):
    """Every `every` optimizer steps, greedy accuracy on `items`: every rank decodes its share,
    the main process judges them and calls `on_eval(step, acc)`, whose answer (true: stop,
    e.g. a pruned sweep trial) every rank then follows, so no rank trains on alone.
    `stopped_at`: the step training was stopped at, or None."""

    def __init__(self, items: Sequence[QAItem], judge: Judge, tokenizer, rollout: RolloutConfig,
                 every: int, on_eval: Callable[[int, float], bool],
                 max_batch_tokens: int = 131072):
        if not items or len({it.split for it in items}) != 1:
            raise ValueError("GreedyEvaluation needs a non-empty list of items of one split")
        self.items, self.judge, self.tokenizer = list(items), judge, tokenizer
        self.rollout, self.every, self.on_eval = rollout, every, on_eval
        self.max_batch_tokens = max_batch_tokens
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every:
            return
        accuracy, _ = policy_accuracy(model, self.tokenizer, self.judge, self.items,
                                      self.rollout, self.max_batch_tokens)
        stop = accuracy is not None and bool(
            self.on_eval(state.global_step, accuracy[self.items[0].split]))
        if from_main(stop):
            self.stopped_at = state.global_step
            control.should_training_stop = True


def progress_steps(max_steps: int, points: int) -> dict[int, float]:
    """The optimizer steps at which to evaluate, mapped to normalised progress in (0, 1].

    >>> progress_steps(10, 4)
    {2: 0.25, 5: 0.5, 8: 0.75, 10: 1.0}
    """
    if max_steps < 1 or points < 1:
        raise ValueError(f"progress_steps needs max_steps >= 1 and points >= 1, "
                         f"got {max_steps}, {points}")
    out: dict[int, float] = {}
    for i in range(1, points + 1):
        out.setdefault(max(1, round(max_steps * i / points)), i / points)
    return out


class ProgressEvaluation(TrainerCallback):
    """Greedy accuracy per split of `items` at `points` evenly spaced fractions of training:
    the training-dynamics curves (train-, val- and test-split accuracy vs progress).

    Every training process decodes its share of the items (`policy_accuracy`); the main
    process judges them all and records the rows.

    Without `select_dir` the last point (progress 1.0) is not evaluated here: it is the
    trained model, which the study evaluates anyway, so `finish` records that evaluation's
    accuracy instead of computing the same greedy answers twice.

    With `select_dir` the checkpoint is chosen on val, never on test: the last step is
    evaluated too; at each point whose val accuracy is at least the best so far, every rank
    tells the Trainer to save (its own save, which gathers sharded weights), and the main
    process keeps that checkpoint's model files in `select_dir` (`keep_model_files`). The
    last point stays where the trainer saves the trained model; `restore_best` puts the
    latest best-on-val point in its place.
    """

    def __init__(self, items: Sequence[QAItem], judge: Judge, tokenizer, rollout: RolloutConfig,
                 points: int, select_dir: Path | None = None, max_batch_tokens: int = 131072):
        if select_dir is not None and not any(it.split == "val" for it in items):
            raise ValueError("choosing the checkpoint on val needs val items to evaluate")
        self.items, self.judge, self.tokenizer = list(items), judge, tokenizer
        self.rollout, self.points, self.select_dir = rollout, points, select_dir
        self.max_batch_tokens = max_batch_tokens
        self.rows: list[dict] = []  # {"progress", "step", "split", "accuracy"}
        self.last_step = 0
        self.best: dict | None = None  # {"step", "progress", "val"}
        self.items_per_rank: list[int] = []  # real items each rank decoded, at the last point
        self._at: dict[int, float] = {}
        self._keep_at: int | None = None  # the step whose checkpoint is the best so far

    def on_train_begin(self, args, state, control, **kwargs):
        # points 0: no dynamics (attribution and transfer runs need only the final model)
        at = progress_steps(state.max_steps, self.points) if self.points else {}
        self._at = {step: p for step, p in at.items()
                    if step < state.max_steps or self.select_dir is not None}
        self.last_step = state.max_steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step in self._at and self.record(self._at[step], step, model) \
                and step < self.last_step:  # the trainer saves the last step itself
            control.should_save = True
            self._keep_at = step
        return control

    def on_save(self, args, state, control, **kwargs):
        if self._keep_at == state.global_step:
            if is_main_process():
                keep_model_files(Path(args.output_dir) / f"checkpoint-{state.global_step}",
                                 Path(self.select_dir))
                self.kept()
            self._keep_at = None
        return control

    def kept(self) -> None:
        """Note which weights `select_dir` now holds (main process, after each keep)."""
        self.best["kept_weights"] = weights_digest(self.select_dir)

    def record(self, progress: float, step: int, model) -> bool:
        """Evaluate the policy at `step` (every rank); True on every rank when it is the best
        on val so far (choosing on val), so that all of them save it together."""
        accuracy, shares = policy_accuracy(model, self.tokenizer, self.judge, self.items,
                                           self.rollout, self.max_batch_tokens)
        better = False
        if accuracy is not None:
            self.items_per_rank = shares
            for split, acc in accuracy.items():
                self.rows.append({"progress": progress, "step": step, "split": split,
                                  "accuracy": acc})
            if self.select_dir is not None and (self.best is None
                                                or accuracy["val"] >= self.best["val"]):
                self.best = {"step": step, "progress": progress, "val": accuracy["val"]}
                better = True
        return from_main(better)

    def restore_best(self, out_dir: Path) -> dict | None:
        """Put the chosen checkpoint's weights in `out_dir` (the trained model's directory,
        tokenizer already there); returns the choice, None when not choosing."""
        import os
        import shutil

        if self.select_dir is None:
            return None
        if self.best is None:
            raise RuntimeError("no val evaluation was recorded to choose a checkpoint from")
        last = weights_digest(out_dir)
        if self.best["step"] < self.last_step:
            # Model files only (the tokenizer stays the one the study saved), and the last
            # step's all gone: its weights may be sharded into files the best one lacks.
            for old in _model_files(Path(out_dir)):
                old.unlink()
            for path in _model_files(Path(self.select_dir)):
                os.replace(path, Path(out_dir) / path.name)
        shutil.rmtree(self.select_dir, ignore_errors=True)
        # The digests say which weights ended up in `out_dir`: the kept checkpoint's, not the
        # last step's (unless the last step was the best).
        return {**self.best, "last_step": self.last_step, "last_weights": last,
                "weights": weights_digest(out_dir)}

    def finish(self, final: dict[str, float]) -> list[dict]:
        """All rows, the last from `final` (the trained model's greedy accuracy per split)
        unless the last step was evaluated during training (choosing on val)."""
        if not self.points or any(r["step"] == self.last_step for r in self.rows):
            return list(self.rows)
        splits = {it.split for it in self.items}
        return self.rows + [{"progress": 1.0, "step": self.last_step, "split": split,
                             "accuracy": acc} for split, acc in sorted(final.items())
                            if split in splits]
