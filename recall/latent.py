"""Latent knowledge measured exactly: the probability that a model answers with the gold.

The paper can only estimate how reachable a fact is, from 128 sampled answers. A model in
hand gives it exactly: p(gold) is the teacher-forced probability of a gold alias's tokens,
then the end of the answer, after the direct prompt, summed over the aliases. It is a lower
bound on the probability of an answer the judge accepts: it counts the canonical
tokenisation of each alias only, and no paraphrase the judge would also accept.

Sampling at temperature 1 with no top-p or top-k cut draws exactly this distribution, so
pass@k = 1 - (1 - p)^k holds for any k without sampling noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from recall.contract import QAItem
from recall.prompts import DIRECT, has_chat_template

LABELS = ("absent", "tail", "accessible")
TAIL_TOP = 1 / 128  # the paper's accessibility: seen in 128 samples about once or more


@dataclass(frozen=True)
class GoldProbability:
    """One item's p(gold) and each alias's log-probability under one model."""

    id: str
    split: str
    log_p: float  # log of the sum over aliases
    aliases: Mapping[str, float]

    @property
    def p(self) -> float:
        return math.exp(self.log_p)


def answer_tokens(tokenizer, prompt: str, alias: str) -> tuple[list[int], list[int]]:
    """The prompt's tokens as the engines encode it, and the alias's canonical tokens after
    it followed by the end of the answer (the tokenizer's EOS, where generation stops)."""
    chat = has_chat_template(tokenizer)
    prompt_ids = tokenizer(prompt, add_special_tokens=not chat)["input_ids"]
    bare = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    # A completion follows the raw prompt after a space (the toy's pretraining format) and
    # the chat template's assistant header directly.
    full = tokenizer(prompt + ("" if chat else " ") + alias, add_special_tokens=False)["input_ids"]
    if full[:len(bare)] != bare:
        raise ValueError(f"the alias {alias!r} merges with the end of the prompt when "
                         f"tokenised, so its tokens after the prompt are not defined: {prompt!r}")
    return prompt_ids, full[len(bare):] + [tokenizer.eos_token_id]


def _batch_log_probs(model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> list[float]:
    """Sum of log p(answer token | everything before it) for each (prompt, answer) pair:
    one left-padded forward pass that keeps only the logits the answers are read from."""
    import torch

    seqs = [p + a for p, a in pairs]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = max(len(a) for _, a in pairs) + 1
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), logits_to_keep=keep).logits
    logp = torch.log_softmax(logits.float(), dim=-1)  # (batch, keep, vocab)
    out = []
    for row, (_, answer) in enumerate(pairs):
        # The last `keep` positions end the sequence; position -1-j predicts token -j.
        n = len(answer)
        targets = torch.tensor(answer, device=logp.device)
        picked = logp[row, keep - 1 - n:keep - 1].gather(-1, targets[:, None])
        out.append(float(picked.sum()))
    return out


def gold_probabilities(model, tokenizer, items: Sequence[QAItem], batch_size: int = 64,
                       progress: bool = True) -> list[GoldProbability]:
    """p(gold) of every item under `model` (a causal LM in eval mode) and its `tokenizer`,
    with the direct prompt: one teacher-forced pass per alias, `batch_size` aliases a pass."""
    from tqdm import tqdm

    jobs = []
    for item in items:
        prompt = DIRECT.render(item.question, tokenizer)
        for alias in dict.fromkeys(item.answers):  # an alias listed twice counts once
            jobs.append((item, alias, answer_tokens(tokenizer, prompt, alias)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores: list[float] = []
    for start in tqdm(range(0, len(jobs), batch_size), desc="p(gold)", unit="batch",
                      disable=not progress):
        chunk = jobs[start:start + batch_size]
        scores.extend(_batch_log_probs(model, [j[2] for j in chunk], pad))
    per_item: dict[str, dict[str, float]] = {}
    for (item, alias, _), score in zip(jobs, scores):
        per_item.setdefault(item.id, {})[alias] = score
    return [GoldProbability(it.id, it.split, _logsumexp(per_item[it.id].values()),
                            per_item[it.id]) for it in items]


def _logsumexp(values) -> float:
    values = list(values)
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def exact_pass_at_k(p: float, k: int) -> float:
    """pass@k of an item whose answer is right with probability `p` per sample."""
    return 1.0 - (1.0 - p) ** k


def absent_threshold(never_shown: Sequence[float], quantile: float) -> float:
    """The p(gold) below which a fact counts as absent: the `quantile` of p(gold) over facts
    the model was never shown (what guessing from the answer pool alone reaches)."""
    import numpy as np

    if not never_shown:
        raise ValueError("no never-shown facts to set the absent threshold from")
    return float(np.quantile(np.asarray(never_shown, dtype=float), quantile))


def knowledge_label(p: float, absent_at: float) -> str:
    """absent (at or below the never-shown quantile), tail (above it, below 1/128: rarely
    or never sampled in 128), or accessible."""
    if p <= absent_at:
        return "absent"
    return "tail" if p < TAIL_TOP else "accessible"


def expected_events(p_gold: Sequence[float], draws_per_item: int) -> float:
    """Expected correct draws when each item is sampled `draws_per_item` times."""
    return draws_per_item * float(sum(p_gold))


def wrong_answer_items(items: Sequence[QAItem], greedy: Sequence) -> list[QAItem]:
    """Each base-wrong test item with the base's greedy (wrong) answer as its one answer to
    score: how much probability training moves off that answer (`greedy`: SampleRecords)."""
    import dataclasses

    wrong = {r.id: r.completions[0] for r in greedy
             if r.split == "test" and not r.scores[0] and r.completions[0]}
    return [dataclasses.replace(it, answers=(wrong[it.id],)) for it in items if it.id in wrong]


def write_gold_probabilities(path, probs: Sequence[GoldProbability],
                             wrong: Sequence[GoldProbability] = ()) -> dict[str, float]:
    """`path` (JSONL, one record per item, beside the sample records; empty for none), with
    `p_base_answer` where `wrong` scored the base's wrong greedy answer; returns the mean
    p(gold) per split for metrics and MLflow."""
    from recall.contract import write_jsonl

    base_answer = {g.id: (next(iter(g.aliases)), g.p) for g in wrong}
    write_jsonl(path, [{"id": g.id, "split": g.split, "p_gold": g.p, "log_p_gold": g.log_p,
                        "aliases": dict(g.aliases),
                        "base_answer": base_answer.get(g.id, (None, None))[0],
                        "p_base_answer": base_answer.get(g.id, (None, None))[1]} for g in probs])
    splits = sorted({g.split for g in probs})
    return {s: sum(g.p for g in probs if g.split == s) / sum(g.split == s for g in probs)
            for s in splits}


def _probability(obj: dict, key: str, where: str) -> float:
    from recall.contract import ContractError, require_field

    value = require_field(obj, key, (int, float), where)
    if not 0.0 <= value <= 1.0:
        raise ContractError(f"{where}: field '{key}' must be a probability in [0, 1], "
                            f"got {value!r}")
    return float(value)


def _gold_row(obj: dict, where: str) -> tuple[str, float, float | None]:
    from recall.contract import require_field

    require_field(obj, "id", str, where)
    wrong = None if obj.get("p_base_answer") is None else _probability(obj, "p_base_answer", where)
    return obj["id"], _probability(obj, "p_gold", where), wrong


def read_gold_probabilities(path, key: str = "p_gold") -> dict[str, float] | None:
    """Item id -> p(gold) (or, `key` p_base_answer, p of the base's wrong greedy answer, for
    the items that have one) from a file `write_gold_probabilities` wrote; None when it holds
    none (latent.run off). A malformed row names its file, line and field."""
    from recall.contract import read_jsonl

    rows = list(read_jsonl(path, _gold_row))
    column = 1 if key == "p_gold" else 2
    return {r[0]: r[column] for r in rows if r[column] is not None} or None


# The exposure bands and p(gold) bins of the report's table (issue 31's measurement).
BANDS = (("not stored", 0, 0), ("shown 1-3 times", 1, 3), ("4-10", 4, 10), ("> 10", 11, None))
P_BINS = ((0.5, "p >= 0.5"), (0.1, "0.1-0.5"), (TAIL_TOP, "1/128-0.1"), (1e-3, "1e-3-1/128"),
          (1e-4, "1e-4-1e-3"), (1e-5, "1e-5-1e-4"), (0.0, "< 1e-5"))


def band_of(exposure: int) -> str:
    return next(name for name, low, high in BANDS
                if exposure >= low and (high is None or exposure <= high))


def bin_of(p: float) -> str:
    return next(name for low, name in P_BINS if p >= low)


def exposure_table(p_gold: Mapping[str, float], exposures: Mapping[str, int]) -> dict:
    """Items counted per exposure band (rows) and p(gold) bin (columns), over the items
    both mappings hold."""
    table = {name: {label: 0 for _, label in P_BINS} for name, _, _ in BANDS}
    for item_id, p in p_gold.items():
        if item_id in exposures:
            table[band_of(exposures[item_id])][bin_of(p)] += 1
    return table


def knowledge_summary(p_gold: Mapping[str, float], exposures: Mapping[str, int],
                      quantile: float) -> dict:
    """The latent-knowledge labels of the items with a world label: the absent threshold
    (from the never-shown ones), each item's label, and labels counted per exposure band."""
    never = [p for i, p in p_gold.items() if exposures.get(i) == 0]
    absent_at = absent_threshold(never, quantile)
    labels = {i: knowledge_label(p, absent_at) for i, p in p_gold.items() if i in exposures}
    by_band = {name: {label: 0 for label in LABELS} for name, _, _ in BANDS}
    for i, label in labels.items():
        by_band[band_of(exposures[i])][label] += 1
    return {"absent_at": absent_at, "quantile": quantile, "labels": labels, "by_band": by_band}


def powered(verdict: str, expected: float | None, min_expected: float) -> str:
    """`verdict` unless it rests on too few expected events: a finding not reproduced (or
    inconclusive) where p(gold) expected fewer than `min_expected` of the events it needs
    is "underpowered", not a refutation. None: no expectation formed (no p(gold))."""
    if expected is None or verdict == "reproduced" or expected >= min_expected:
        return verdict
    return "underpowered"


def latent_evidence(before: Mapping[str, float] | None, after: Mapping[str, float] | None,
                    exposures: Mapping[str, int], ids: Sequence[str], quantile: float) -> dict | None:
    """The report's latent-knowledge figures over `ids` (the RL-train items): p(gold) per
    exposure band before and after GRPO, the absent threshold and the labels per band.
    None without p(gold) or without a world label (real data has no exposure)."""
    if before is None:
        return None
    labelled = [i for i in ids if i in before and i in exposures]
    if not labelled:
        return None
    b = {i: before[i] for i in labelled}
    summary = knowledge_summary(b, exposures, quantile)
    out = {"items": len(b), "absent_at": summary["absent_at"], "quantile": quantile,
           "by_band": summary["by_band"], "before": exposure_table(b, exposures),
           "mean_before": sum(b.values()) / len(b), "after": None, "mean_after": None}
    if after is not None:
        a = {i: after[i] for i in labelled if i in after}
        out["after"], out["mean_after"] = exposure_table(a, exposures), sum(a.values()) / len(a)
    return out


def mean_expected(expected: Mapping[str, Mapping[str, float]] | None) -> dict[str, float] | None:
    """Per partition, the seeds' mean expected correct rollouts (metrics/attribution.json)."""
    if not expected:
        return None
    return {name: sum(seeds.values()) / len(seeds) for name, seeds in expected.items()}


def latent_groups(train: Sequence[QAItem], p_gold: Mapping[str, float],
                  exposures: Mapping[str, int], quantile: float) -> dict[str, list[QAItem]]:
    """RL-train items by their p(gold) label: tail (what RL could pull up) and absent (what no
    method can recall), in item order; the threshold comes from the never-shown items."""
    labels = knowledge_summary({it.id: p_gold[it.id] for it in train}, exposures,
                               quantile)["labels"]
    return {name: [it for it in train if labels.get(it.id) == name] for name in ("tail", "absent")}


def exact_pass_curve(p_gold: Mapping[str, float], ids: Sequence[str],
                     ks: Sequence[int]) -> dict[int, float]:
    """Mean exact pass@k over `ids` for each k: pass@k with no sampling noise."""
    return {k: sum(exact_pass_at_k(p_gold[i], k) for i in ids) / len(ids) for k in ks}
