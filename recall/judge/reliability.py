"""Judge reliability (the paper's Appendix D): agreement with reference labels, split by group.

For the toy world the reference is ground truth: its alias lists are complete, so an
answer is correct exactly when it normalises to an alias. For real data the reference is a
labelled sample file: JSON lines of {"question", "answers", "candidate", "label": 0|1}.
Groups are e.g. pre-RL (base model samples) and post-RL (trained model samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from recall.contract import ContractError, QAItem, SampleRecord, read_jsonl, require_field
from recall.judge.interface import JudgeRequest
from recall.judge.rules import exact_match, normalize_answer


def labelled_from_samples(records: Sequence[SampleRecord], items: Mapping[str, QAItem],
                          split: str = "test") -> list[tuple[JudgeRequest, int]]:
    """Distinct (item, normalised answer) pairs of `split`, labelled by ground truth."""
    seen, out = set(), []
    for r in records:
        if r.split != split:
            continue
        item = items[r.id]
        for c in r.completions:
            key = (r.id, normalize_answer(c))
            if key not in seen:
                seen.add(key)
                out.append((JudgeRequest(item.question, item.answers, c),
                            int(exact_match(item.answers, c))))
    return out


def _labelled_from_dict(row: dict, where: str) -> tuple[JudgeRequest, int]:
    for key, kind in (("question", str), ("answers", list), ("candidate", str), ("label", int)):
        require_field(row, key, kind, where)
    if row["label"] not in (0, 1):
        raise ContractError(f"{where}: field 'label' must be 0 or 1, got {row['label']!r}")
    return JudgeRequest(row["question"], tuple(row["answers"]), row["candidate"]), row["label"]


def read_labelled(path: str | Path) -> list[tuple[JudgeRequest, int]]:
    """A labelled sample file; a bad line is an error naming the file, the line and the field."""
    return list(read_jsonl(path, _labelled_from_dict))


def reliability(judge, groups: Mapping[str, Sequence[tuple[JudgeRequest, int]]]) -> dict:
    """Agreement, false positive and false negative rates of `judge` per group."""
    report = {}
    for name, pairs in groups.items():
        verdicts = judge.judge([req for req, _ in pairs])
        report[name] = agreement([label for _, label in pairs], [v.value for v in verdicts])
    return report


def reliability_by_kind(judge, pairs: Sequence) -> dict:
    """Agreement on labelled pairs (recall.judge.training.LabelledPair), overall and per kind.

    Each pair is judged once; the per-kind figures slice the same verdicts.
    """
    verdicts = [v.value for v in judge.judge([p.request for p in pairs])]
    report = {"all": agreement([p.label for p in pairs], verdicts)}
    for kind in sorted({p.kind for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.kind == kind]
        report[kind] = agreement([pairs[i].label for i in idx], [verdicts[i] for i in idx])
    return report


def agreement(labels: Sequence[int], verdicts: Sequence[int | None]) -> dict:
    """Agreement with reference labels; a missing verdict counts as disagreement.

    false_positive_rate: share of wrong answers judged correct; false_negative_rate: share
    of correct answers judged wrong (or not judged).
    """
    if len(labels) != len(verdicts) or not labels:
        raise ValueError("agreement needs one verdict per label, and at least one")
    pos = [v for l_, v in zip(labels, verdicts) if l_ == 1]
    neg = [v for l_, v in zip(labels, verdicts) if l_ == 0]
    return {
        "n": len(labels),
        "agreement": sum(l_ == v for l_, v in zip(labels, verdicts)) / len(labels),
        "false_positive_rate": sum(v == 1 for v in neg) / len(neg) if neg else None,
        "false_negative_rate": sum(v != 1 for v in pos) / len(pos) if pos else None,
        "no_verdict": sum(v is None for v in verdicts),
    }
