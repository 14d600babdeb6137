import random
from collections import Counter

import pytest

from recall.judge.prompts import JUDGE_TOY
from recall.judge.reliability import agreement
from recall.judge.rules import exact_match
from recall.judge.training import (
    _VerdictLines,
    judge_pairs,
    judge_tokenizer,
    judge_training_pairs,
    pair_line,
    verdict_collator,
)


def test_pairs_are_labelled_by_ground_truth(tiny_model):
    _, world, _ = tiny_model
    items = [i for i in world.items if i.split == "test"]
    pairs = judge_pairs(items, random.Random(0), negatives=3)
    kinds = Counter((p.kind, p.label) for p in pairs)
    assert kinds[("alias", 1)] == sum(len(i.answers) for i in items)
    assert kinds[("other_value", 0)] == 3 * len(items)
    assert kinds[("other_form", 0)] == len(items)
    # In the toy world the alias list is complete, so exact match is the ground truth.
    for p in pairs:
        assert exact_match(p.request.answers, p.request.candidate) == bool(p.label), p


def test_training_lines_put_loss_on_candidate_and_verdict_only(tiny_model):
    _, world, _ = tiny_model
    tok = judge_tokenizer(world.items)
    pairs = [p for p in judge_pairs(list(world.items[:40]), random.Random(0))
             if p.request.candidate]
    lines = _VerdictLines(tok, pairs[:4], length=48)
    batch = verdict_collator(tok)([lines[i] for i in range(4)])
    lengths = [len(lines[i]["input_ids"]) for i in range(4)]
    # Padded to the batch's longest line, not to `length`.
    assert batch["input_ids"].shape == (4, max(lengths)) and max(lengths) < 48
    for i, (pair, n) in enumerate(zip(pairs, lengths)):
        prompt, verdict = pair_line(pair)
        assert prompt.startswith("question :") and verdict in JUDGE_TOY.choices
        learned = tok.decode([t for t in batch["labels"][i].tolist() if t != -100],
                             skip_special_tokens=True)
        assert learned == f"{pair.request.candidate} verdict : {verdict}"
        assert tok.unk_token_id not in batch["input_ids"][i].tolist()
        # Right-padded: the line starts at position 0, as the served judge sees its prompt.
        assert batch["input_ids"][i][0] != tok.pad_token_id
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert set(batch["input_ids"][i][n:].tolist()) <= {tok.pad_token_id}
        assert set(batch["labels"][i][n:].tolist()) <= {-100}
    assert tok.padding_side == "left"  # the saved judge tokenizer keeps the policy's side


def test_training_lines_keep_their_end_when_too_long(tiny_model):
    _, world, _ = tiny_model
    tok = judge_tokenizer(world.items)
    pair = next(p for p in judge_pairs(list(world.items[:40]), random.Random(0))
                if p.request.candidate)
    full = _VerdictLines(tok, [pair], length=48)[0]
    cut = _VerdictLines(tok, [pair], length=10)[0]
    assert cut["input_ids"] == full["input_ids"][-10:] and cut["labels"] == full["labels"][-10:]


def test_agreement_hand_computed():
    scores = agreement([1, 1, 0, 0, 0], [1, None, 1, 0, 0])
    assert scores["agreement"] == pytest.approx(3 / 5)
    assert scores["false_positive_rate"] == pytest.approx(1 / 3)
    assert scores["false_negative_rate"] == pytest.approx(1 / 2)
    assert scores["no_verdict"] == 1


def test_training_pairs_draw_fresh_negatives_and_leave_the_held_out_stream_alone(tiny_model):
    _, world, _ = tiny_model
    items = [i for i in world.items if i.split == "instruct"][:30]
    one_rng, three_rng = random.Random(5), random.Random(5)
    one = judge_training_pairs(items, one_rng, negatives=3, draws=1, seed=0)
    assert one == judge_pairs(items, random.Random(5), negatives=3)
    three = judge_training_pairs(items, three_rng, negatives=3, draws=3, seed=0)
    kinds = Counter((p.kind, p.label) for p in three)
    assert kinds[("alias", 1)] == 3 * sum(len(i.answers) for i in items)
    assert kinds[("other_value", 0)] == 3 * 3 * len(items)
    # The extra draws are new wrong answers, not copies of the first.
    first = {(p.request.question, p.request.candidate) for p in one if p.kind == "other_value"}
    later = {(p.request.question, p.request.candidate) for p in three[len(one):]
             if p.kind == "other_value"}
    assert later - first
    # What the caller draws next from its rng (the held-out pairs) is the same either way.
    assert one_rng.random() == three_rng.random()


PAIRS_SCRIPT = """
import hashlib, random
from recall.config import params_from_dict
from recall.judge.training import judge_training_pairs
from recall.world import generate_world
from conftest import micro_params_dict

world = generate_world(params_from_dict(micro_params_dict()).world, seed=0)
pairs = judge_training_pairs(world.items[:200], random.Random(0), 3, draws=2, seed=0)
print(hashlib.sha256(repr(pairs).encode()).hexdigest())
"""


def test_pairs_do_not_depend_on_the_process_hash_seed():
    # Each DVC stage is a new process with its own PYTHONHASHSEED; if set order leaked into
    # the rng's picks, two repros of the judge stage would train on different pairs.
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parents[1]
    digests = {subprocess.run([sys.executable, "-c", PAIRS_SCRIPT], capture_output=True,
                              text=True, check=True, cwd=tests,
                              env={**os.environ, "PYTHONHASHSEED": seed,
                                   "PYTHONPATH": f"{tests}:{tests.parent}"}).stdout
               for seed in ("1", "2", "3")}
    assert len(digests) == 1, digests


def test_pooled_answers_get_near_miss_negatives_one_word_off_and_last_word_alone():
    from conftest import micro_params_dict

    from recall.config import params_from_dict
    from recall.judge.training import judge_pairs
    from recall.world import generate_world

    data = micro_params_dict()
    data["world"].update(value_words=2, answer_pool=10)
    world = generate_world(params_from_dict(data).world, seed=0)
    items = [it for it in world.items if it.split == "train"]
    pairs = judge_pairs(items, random.Random(0))
    kinds = Counter(p.kind for p in pairs)
    assert kinds["one_word"] == len(items) and kinds["last_word"] == len(items)
    for p in pairs:
        assert p.label == int(exact_match(p.request.answers, p.request.candidate)), p
        if p.kind == "one_word":  # exactly one of the value's two words replaced
            gold = p.request.answers[-1].split() if len(p.request.answers[-1].split()) == 2 \
                else None
            if gold:
                assert sum(w in p.request.candidate.split() for w in gold) == 1
