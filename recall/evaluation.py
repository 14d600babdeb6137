"""Evaluation during training: greedy accuracy of the live policy at step intervals.

Sweeps report it to Optuna for pruning; the study records it over normalised training
progress for every method (the paper's Figure 1).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

from transformers import TrainerCallback

from recall.compute import is_main_process
from recall.config import RolloutConfig
from recall.contract import Judge, QAItem
from recall.engines import TransformersEngine
from recall.sampling import accuracy_by_split, greedy_settings, raw_completions, sample_items


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
    """Every `every` optimizer steps, greedy accuracy on `items`; `on_eval(step, acc)` may raise
    (e.g. optuna.TrialPruned) to stop training."""

    def __init__(self, items: Sequence[QAItem], judge: Judge, tokenizer, rollout: RolloutConfig,
                 every: int, on_eval: Callable[[int, float], None]):
        if not items or len({it.split for it in items}) != 1:
            raise ValueError("GreedyEvaluation needs a non-empty list of items of one split")
        self.items, self.judge, self.tokenizer = list(items), judge, tokenizer
        self.rollout, self.every, self.on_eval = rollout, every, on_eval

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every:
            return
        with eval_mode(model):
            acc = greedy_by_split(TransformersEngine.from_model(model, self.tokenizer), self.judge,
                                  self.items, self.rollout)[self.items[0].split]
        self.on_eval(state.global_step, acc)


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

    Without `select_dir` the last point (progress 1.0) is not evaluated here: it is the
    trained model, which the study evaluates anyway, so `finish` records that evaluation's
    accuracy instead of computing the same greedy answers twice.

    With `select_dir` the checkpoint is chosen on val, never on test: the last step is
    evaluated too, each point whose val accuracy is at least the best so far is saved to
    `select_dir` (the last one stays where the trainer saves it), and `restore_best` puts
    the latest best-on-val point in the trained model's place. One process only: a sharded
    model (FSDP) would need every rank to gather its weights for each save.
    """

    def __init__(self, items: Sequence[QAItem], judge: Judge, tokenizer, rollout: RolloutConfig,
                 points: int, select_dir: Path | None = None):
        if select_dir is not None and not any(it.split == "val" for it in items):
            raise ValueError("choosing the checkpoint on val needs val items to evaluate")
        self.items, self.judge, self.tokenizer = list(items), judge, tokenizer
        self.rollout, self.points, self.select_dir = rollout, points, select_dir
        self.rows: list[dict] = []  # {"progress", "step", "split", "accuracy"}
        self.last_step = 0
        self.best: dict | None = None  # {"step", "progress", "val"}
        self._at: dict[int, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        # points 0: no dynamics (attribution and transfer runs need only the final model)
        at = progress_steps(state.max_steps, self.points) if self.points else {}
        self._at = {step: p for step, p in at.items()
                    if step < state.max_steps or self.select_dir is not None}
        self.last_step = state.max_steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self._at:
            self.record(self._at[state.global_step], state.global_step, model)

    def record(self, progress: float, step: int, model) -> None:
        if not is_main_process():
            # Sharded weights (FSDP, ZeRO-3) need every rank in each forward pass, so every
            # rank decodes the same greedy answers; only the main process judges and records.
            with eval_mode(model):
                raw_completions(TransformersEngine.from_model(model, self.tokenizer), self.items,
                                greedy_settings(self.rollout))
            return
        with eval_mode(model):
            accuracy = greedy_by_split(TransformersEngine.from_model(model, self.tokenizer),
                                       self.judge, self.items, self.rollout)
        for split, acc in accuracy.items():
            self.rows.append({"progress": progress, "step": step, "split": split,
                              "accuracy": acc})
        if self.select_dir is not None and (self.best is None or accuracy["val"] >= self.best["val"]):
            self.best = {"step": step, "progress": progress, "val": accuracy["val"]}
            if step < self.last_step:  # the trainer saves the last step itself
                model.save_pretrained(self.select_dir)

    def restore_best(self, out_dir: Path) -> dict | None:
        """Put the chosen checkpoint's weights in `out_dir` (the trained model's directory,
        tokenizer already there); returns the choice, None when not choosing."""
        import shutil

        if self.select_dir is None:
            return None
        if self.best is None:
            raise RuntimeError("no val evaluation was recorded to choose a checkpoint from")
        if self.best["step"] < self.last_step:
            for path in Path(self.select_dir).iterdir():
                shutil.copy2(path, Path(out_dir) / path.name)
        shutil.rmtree(self.select_dir, ignore_errors=True)
        return {**self.best, "last_step": self.last_step}

    def finish(self, final: dict[str, float]) -> list[dict]:
        """All rows, the last from `final` (the trained model's greedy accuracy per split)
        unless the last step was evaluated during training (choosing on val)."""
        if not self.points or any(r["step"] == self.last_step for r in self.rows):
            return list(self.rows)
        splits = {it.split for it in self.items}
        return self.rows + [{"progress": 1.0, "step": self.last_step, "split": split,
                             "accuracy": acc} for split, acc in sorted(final.items())
                            if split in splits]
