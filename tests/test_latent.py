import math

import pytest
import torch

from recall.contract import QAItem
from recall.latent import (
    absent_threshold,
    answer_tokens,
    exact_pass_at_k,
    expected_events,
    gold_probabilities,
    knowledge_label,
)
from recall.prompts import DIRECT


def _item(i: int, question: str, *answers: str, split: str = "test") -> QAItem:
    return QAItem(id=f"q{i}", dataset="toy", question=question, answers=answers, fact=None,
                  split=split)


def _by_hand(model, tokenizer, item: QAItem) -> float:
    """Sum over aliases of the product of softmax entries, one unpadded forward pass per
    answer token: the definition, with none of gold_probabilities' batching."""
    total = 0.0
    for alias in dict.fromkeys(item.answers):
        prompt, answer = answer_tokens(tokenizer, DIRECT.render(item.question, tokenizer), alias)
        seq, prob = list(prompt), 1.0
        for token in answer:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            prob *= float(torch.softmax(logits.double(), -1)[token])
            seq.append(token)
        total += prob
    return total


@pytest.fixture(scope="module")
def hand_model():
    """A random GPT-2 over a word-level tokenizer (the toy's), sharp enough that
    probabilities differ by orders of magnitude between tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from recall.pretraining import build_tokenizer

    tok = build_tokenizer(["who founded the acme company", "where was ada born",
                           "paris london rome new york"])
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16,
                                       n_layer=1, n_head=1)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # tied embeddings: logits far from uniform
    return model, tok


def test_p_gold_is_the_product_of_softmax_entries(hand_model):
    model, tok = hand_model
    # Questions and aliases of different lengths in one batch: left padding must not move
    # a single probability.
    items = [_item(0, "who founded the acme company", "ada", "new york"),
             _item(1, "where was ada born", "paris"),
             _item(2, "where", "london", "rome", "london")]
    got = gold_probabilities(model, tok, items, batch_size=3, progress=False)
    for item, g in zip(items, got):
        assert g.p == pytest.approx(_by_hand(model, tok, item), rel=1e-5)
        assert set(g.aliases) == set(item.answers)
    # The duplicated alias counts once; the batch size changes nothing.
    again = gold_probabilities(model, tok, items, batch_size=1, progress=False)
    assert [g.log_p for g in again] == pytest.approx([g.log_p for g in got], rel=1e-6)


def test_the_answer_ends_with_eos_and_follows_the_prompt_after_a_space(hand_model):
    _, tok = hand_model
    prompt = DIRECT.render("where was ada born")
    prompt_ids, answer = answer_tokens(tok, prompt, "new york")
    assert answer == tok(" new york", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert prompt_ids == tok(prompt)["input_ids"]


def test_chat_model_answers_after_the_assistant_header(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recall.micro_model import build_chat_model

    build_chat_model(tmp_path, ["Who wrote Hamlet?", "William Shakespeare", "Paris"], seed=0)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    item = _item(0, "Who wrote Hamlet?", "William Shakespeare", "Shakespeare")
    prompt = DIRECT.render(item.question, tok)
    assert prompt.endswith("<|im_start|>assistant\n")
    _, answer = answer_tokens(tok, prompt, "Shakespeare")
    assert tok.decode(answer[:-1]) == "Shakespeare" and answer[-1] == tok.eos_token_id
    [got] = gold_probabilities(model, tok, [item], progress=False)
    assert got.p == pytest.approx(_by_hand(model, tok, item), rel=1e-5)


def test_exact_pass_at_k_matches_sampling_on_the_toy_base(tiny_model):
    """Sampling at temperature 1 draws the gold answer with probability p(gold): the hits
    of 400 samples per item fall in each item's binomial interval, and their total within
    four standard deviations of the sum of p(gold)."""
    from scipy.stats import binom
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recall.contract import SamplingSettings
    from recall.engines import TransformersEngine

    model_dir, world, _ = tiny_model
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = [it for it in world.items if it.split == "instruct"][:12] \
        + [it for it in world.items if it.split == "test"][:12]
    probs = [g.p for g in gold_probabilities(model, tok, items, progress=False)]
    n = 400
    engine = TransformersEngine(str(model_dir))
    texts = engine.generate([DIRECT.render(it.question) for it in items],
                            SamplingSettings(n=n, temperature=1.0, top_p=1.0, top_k=-1,
                                             max_tokens=8, seed=0))
    hits = [sum(t in it.answers for t in out) for it, out in zip(items, texts)]
    assert max(probs) > 0.2 and min(probs) < 0.01  # learned facts and unlearned ones both
    for h, p in zip(hits, probs):
        low, high = binom.interval(0.9999, n, p)
        assert low <= h <= high, (h, n * p)
    mean, sd = n * sum(probs), math.sqrt(sum(n * p * (1 - p) for p in probs))
    assert mean > 100  # enough expected hits for the comparison to mean something
    assert abs(sum(hits) - mean) <= 4 * sd
    # pass@k from p(gold) and from the samples (the unbiased estimator) agree likewise.
    k = 8
    sampled = [1 - math.comb(n - h, k) / math.comb(n, k) for h in hits]
    exact = [exact_pass_at_k(p, k) for p in probs]
    # The estimator varies no more than a mean over n // k disjoint blocks of k samples.
    assert abs(sum(sampled) - sum(exact)) <= 4 * math.sqrt(sum(e * (1 - e) for e in exact)
                                                           / (n // k))


def test_labels_and_expected_events_by_hand():
    absent_at = absent_threshold([1e-6, 2e-6, 3e-6, 4e-6, 1e-3], 0.75)
    assert absent_at == pytest.approx(4e-6)
    assert [knowledge_label(p, absent_at) for p in (4e-6, 5e-6, 1 / 129, 1 / 128, 0.9)] \
        == ["absent", "tail", "tail", "accessible", "accessible"]
    assert expected_events([0.01, 0.02, 0.0], 40) == pytest.approx(1.2)
    assert exact_pass_at_k(0.5, 3) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="never-shown"):
        absent_threshold([], 0.95)


def test_exposure_table_and_labels_count_each_item_once():
    from recall.latent import exposure_table, knowledge_summary, powered

    p = {"a": 0.9, "b": 0.2, "c": 0.005, "d": 1e-3, "e": 5e-5, "f": 1e-7, "g": 0.5}
    exposures = {"a": 12, "b": 5, "c": 2, "d": 0, "e": 0, "f": 0, "h": 3}
    table = exposure_table(p, exposures)
    assert table["> 10"]["p >= 0.5"] == 1 and table["4-10"]["0.1-0.5"] == 1
    assert table["shown 1-3 times"]["1e-3-1/128"] == 1
    assert table["not stored"] == {"p >= 0.5": 0, "0.1-0.5": 0, "1/128-0.1": 0,
                                   "1e-3-1/128": 1, "1e-4-1e-3": 0, "1e-5-1e-4": 1, "< 1e-5": 1}
    assert sum(sum(row.values()) for row in table.values()) == 6  # g has no world label
    summary = knowledge_summary(p, exposures, 1.0)  # absent: up to the never-shown maximum
    assert summary["absent_at"] == pytest.approx(1e-3)
    assert summary["labels"] == {"a": "accessible", "b": "accessible", "c": "tail",
                                 "d": "absent", "e": "absent", "f": "absent"}
    assert summary["by_band"]["not stored"] == {"absent": 3, "tail": 0, "accessible": 0}
    assert powered("not reproduced", 3.1, 10) == "underpowered"
    assert powered("inconclusive", 9.9, 10) == "underpowered"
    assert powered("not reproduced", 10.0, 10) == "not reproduced"
    assert powered("reproduced", 0.5, 10) == "reproduced"
    assert powered("not reproduced", None, 10) == "not reproduced"


def test_latent_groups_split_rl_train_by_label():
    from recall.latent import latent_groups

    train = [_item(i, f"q{i}", "a", split="train") for i in range(5)]
    p = {"q0": 1e-6, "q1": 2e-6, "q2": 1e-3, "q3": 0.5, "q4": 1e-5}
    exposures = {"q0": 0, "q1": 0, "q2": 4, "q3": 9, "q4": 1}
    groups = latent_groups(train, p, exposures, 1.0)
    assert [it.id for it in groups["tail"]] == ["q2", "q4"]
    assert [it.id for it in groups["absent"]] == ["q0", "q1"]


def test_attribution_by_p_gold_needs_p_gold():
    from conftest import micro_params_dict

    from recall.config import ConfigError, params_from_dict

    data = micro_params_dict()
    data["latent"]["run"], data["attribution"]["latent"] = False, True
    with pytest.raises(ConfigError, match="attribution.latent needs the base.s p.gold.: latent.run is false"):
        params_from_dict(data)
