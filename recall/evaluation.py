"""Evaluation during training: greedy accuracy of the live policy at step intervals.

Sweeps report it to Optuna for pruning.
"""

from __future__ import annotations

from typing import Callable, Sequence

from transformers import TrainerCallback

from recall.config import RolloutConfig
from recall.contract import Judge, QAItem
from recall.engines import TransformersEngine
from recall.sampling import accuracy_by_split, greedy_settings, sample_items


def greedy_accuracy(engine, judge: Judge, items: Sequence[QAItem], rollout: RolloutConfig) -> float:
    """Mean greedy correctness over `items` (all of one split)."""
    records, _ = sample_items(engine, judge, items, greedy_settings(rollout), "policy")
    return accuracy_by_split(records)[items[0].split]


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
        was_training = model.training
        model.eval()
        try:
            acc = greedy_accuracy(TransformersEngine.from_model(model, self.tokenizer), self.judge,
                                  self.items, self.rollout)
        finally:
            model.train(was_training)
        self.on_eval(state.global_step, acc)
