"""Fact-level train/test dedup: a test item is a leak when a train item asks the same fact.

1. Candidates per target item (val, test), at most `top_k`, in priority order: the same
   question, the same normalised question, the same fact key (only where a dataset ships its
   facts, `use_fact_keys`), then the nearest reference questions by retrieval (TF-IDF char
   n-grams, or dense embeddings; recall.retrieval).
2. A verifier decides each candidate pair: `{"is_contained": bool, "reasoning": str}`. The
   same fact in other words is contained; the same answer about another subject is not.
   - `llm`: the judge server, JSON constrained by schema and parsed strictly (the paper's).
   - `heuristic`: see `HeuristicVerifier`. It never reads ground-truth facts.
3. Every target item with a contained pair is removed; every verified pair is reported.

Ground truth (the toy world's facts) is used only by `score` to measure precision and recall.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Sequence

from recall.config import DedupConfig, JudgeConfig
from recall.contract import QAItem
from recall.judge import JudgeError, normalize_answer


class DedupError(RuntimeError):
    """A verifier that failed to give a verdict for some pair."""


@dataclass(frozen=True)
class Containment:
    """One verified candidate pair: a row of the dedup report."""

    target_id: str
    reference_id: str
    target_question: str
    reference_question: str
    answers: tuple[str, ...]  # the target's
    reason: str  # exact_question | normalized_question | fact_key | retrieval
    score: float  # retrieval similarity (1.0 for exact matches)
    is_contained: bool
    reasoning: str


def fact_key(item: QAItem) -> str | None:
    return f"{item.fact.subject}\t{item.fact.relation}" if item.fact else None


def candidates(targets: Sequence[QAItem], references: Sequence[QAItem], cfg: DedupConfig
               ) -> list[list[tuple[int, str, float]]]:
    """Per target: up to top_k (reference index, reason, score), strongest reasons first."""
    from recall.retrieval import dense_top_k, tfidf_top_k

    index: dict[str, dict[str, list[int]]] = {"exact_question": {}, "normalized_question": {},
                                               "fact_key": {}}
    keys = {"exact_question": lambda it: it.question,
            "normalized_question": lambda it: normalize_answer(it.question),
            "fact_key": fact_key if cfg.use_fact_keys else (lambda it: None)}
    for j, ref in enumerate(references):
        for reason, key in keys.items():
            value = key(ref)
            if value is not None:
                index[reason].setdefault(value, []).append(j)
    t_questions, r_questions = [t.question for t in targets], [r.question for r in references]
    if cfg.embedding_model:
        near, sims = dense_top_k(t_questions, r_questions, cfg.top_k, cfg.embedding_model)
    else:
        near, sims = tfidf_top_k(t_questions, r_questions, cfg.top_k, tuple(cfg.ngram_range))
    out = []
    for i, target in enumerate(targets):
        chosen: dict[int, tuple[int, str, float]] = {}
        for reason, key in keys.items():
            for j in index[reason].get(key(target), []):  # a None key is in no index
                chosen.setdefault(j, (j, reason, 1.0))
        for j, sim in zip(near[i], sims[i]):
            chosen.setdefault(int(j), (int(j), "retrieval", float(sim)))
        out.append(list(chosen.values())[:cfg.top_k])
    return out


def stem(word: str) -> str:
    """A crude suffix stripper, so 'oceans'/'ocean' and 'sponsored'/'sponsor' match.

    >>> [stem(w) for w in ("oceans", "sponsored", "starting", "bus", "kiro")]
    ['ocean', 'sponsor', 'start', 'bus', 'kiro']
    """
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[:-len(suffix)]
    return word


def question_words(question: str) -> set[str]:
    return {stem(w) for w in normalize_answer(question).split()}


class HeuristicVerifier:
    """Contained iff the two items share a normalised answer AND at least `min_overlap` of
    one question's distinctive words occur in the other (words suffix-stemmed).

    A word is distinctive when it is not an English stop word (scikit-learn's list) and occurs
    in at most `max_df` of all questions (targets and references together): question forms
    ("where", "born", "which company") are common, subject names are rare. Requiring a shared
    answer rules out same-subject questions about another relation; requiring one side's
    distinctive words in the other rules out the same answer about another subject (a
    two-word name sharing one word is an overlap of 0.5). A side with fewer than two
    distinctive words cannot establish containment; the same normalised question with a
    shared answer always does. It catches rewordings of the form around the same subject
    words, not synonyms of the subject itself: on real data it is a CPU fallback for the LLM
    verifier, not a replacement.
    """

    name = "heuristic"

    def __init__(self, questions: Sequence[str], max_df: float, min_overlap: float = 1.0):
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        df = Counter(w for q in questions for w in question_words(q))
        self.common = {w for w, c in df.items() if c > max_df * len(questions)}
        self.common |= {stem(w) for w in ENGLISH_STOP_WORDS}
        self.min_overlap = min_overlap

    def _covered(self, key: set[str], words: set[str]) -> bool:
        # One distinctive word plus an answer is too little evidence for a shared subject.
        return len(key) >= 2 and len(key & words) >= self.min_overlap * len(key)

    def verify(self, pairs: Sequence[tuple[QAItem, QAItem]]) -> list[tuple[bool, str]]:
        out = []
        for target, ref in pairs:
            shared = ({normalize_answer(a) for a in target.answers}
                      & {normalize_answer(a) for a in ref.answers})
            if not shared:
                out.append((False, "no answer in common"))
                continue
            t_words, r_words = question_words(target.question), question_words(ref.question)
            t_key, r_key = t_words - self.common, r_words - self.common
            answer = sorted(shared)[0]
            if normalize_answer(target.question) == normalize_answer(ref.question):
                out.append((True, f"answer '{answer}' and the same normalised question"))
            elif self._covered(r_key, t_words):
                out.append((True, f"answer '{answer}'; the train question's distinctive words "
                                  f"{sorted(r_key)}: {sorted(r_key & t_words)} in the test question"))
            elif self._covered(t_key, r_words):
                out.append((True, f"answer '{answer}'; the test question's distinctive words "
                                  f"{sorted(t_key)}: {sorted(t_key & r_words)} in the train question"))
            else:
                out.append((False, f"answer '{answer}' shared, but test words "
                                   f"{sorted(t_key - r_words)} and train words "
                                   f"{sorted(r_key - t_words)} differ: another subject"))
        return out


# The verdict object {"is_contained": bool, "reasoning": str}, with no free whitespace and a
# reasoning short enough that a reply always closes inside max_tokens as valid JSON.
CONTAINMENT_REGEX = r'\{"is_contained": ?(true|false), ?"reasoning": ?"[^"\\\n]{1,200}"\}'


def parse_containment(reply: str) -> tuple[bool, str]:
    """A strict JSON verdict; ValueError saying what is wrong otherwise."""
    try:
        obj = json.loads(reply)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg}): {reply[:120]!r}") from err
    if not isinstance(obj, dict) or set(obj) != {"is_contained", "reasoning"}:
        raise ValueError(f"expected exactly keys is_contained, reasoning: {reply[:120]!r}")
    if not isinstance(obj["is_contained"], bool) or not isinstance(obj["reasoning"], str):
        raise ValueError(f"is_contained must be a boolean and reasoning a string: {reply[:120]!r}")
    return obj["is_contained"], obj["reasoning"]


class LLMVerifier:
    """The paper's verifier: the judge model answers a JSON containment verdict per pair."""

    name = "llm"

    def __init__(self, cfg: JudgeConfig, base_url: str, model: str):
        from recall.completions import CompletionClient
        from recall.prompts import CONTAINMENT

        self.model, self.prompt = model, CONTAINMENT
        self.client = CompletionClient(base_url, cfg)

    def verify(self, pairs: Sequence[tuple[QAItem, QAItem]]) -> list[tuple[bool, str]]:
        bodies = [{"model": self.model, "max_tokens": 256, "temperature": 0.0,
                   "prompt": self.prompt.render(t.question, t.answers, r.question, r.answers),
                   # A regex, not the JSON schema: the schema's free whitespace lets a weak
                   # model fill max_tokens with newlines and never close the object.
                   "structured_outputs": {"regex": CONTAINMENT_REGEX}} for t, r in pairs]
        replies = self.client.complete_all(bodies, desc="dedup verdicts")
        out, problems = [], []
        for (target, ref), reply in zip(pairs, replies):
            try:
                if isinstance(reply, JudgeError):
                    raise ValueError(f"unreachable: {reply}")
                out.append(parse_containment(reply))
            except ValueError as err:
                problems.append(f"({target.id}, {ref.id}): {err}")
        if problems:
            # A pair without a verdict could hide a leak: no silent default either way.
            raise DedupError(f"dedup verifier at {self.client.base_url} gave no verdict for "
                             f"{len(problems)} of {len(pairs)} pairs; first: "
                             + "; ".join(problems[:3]))
        return out


class NoVerifier:
    """Dedup switched off (an ablation): every candidate pair is kept, so nothing is removed,
    and `validate` is the only guard left."""

    name = "none"

    def verify(self, pairs: Sequence[tuple[QAItem, QAItem]]) -> list[tuple[bool, str]]:
        return [(False, "dedup.verifier is none: not verified")] * len(pairs)


@contextlib.contextmanager
def open_verifier(cfg: DedupConfig, judge: JudgeConfig, questions: Sequence[str]) -> Iterator:
    """The configured verifier; for `llm`, the judge server (served here if no base_url)."""
    if cfg.verifier == "none":
        yield NoVerifier()
    elif cfg.verifier == "heuristic":
        yield HeuristicVerifier(questions, cfg.max_df, cfg.min_overlap)
    elif judge.base_url:
        yield LLMVerifier(judge, judge.base_url, judge.model)
    else:
        from recall.judge_server import serve_judge

        with serve_judge(judge.model) as base_url:
            yield LLMVerifier(judge, base_url, judge.model)


def deduplicate(items: Sequence[QAItem], cfg: DedupConfig, verifier
                ) -> tuple[list[QAItem], list[Containment], dict]:
    """Items without the leaked targets, the report of every verified pair, and counts."""
    targets = [it for it in items if it.split in cfg.targets]
    references = [it for it in items if it.split in cfg.references]
    per_target = candidates(targets, references, cfg) if targets and references else []
    pairs = [(targets[i], references[j], reason, sim)
             for i, cands in enumerate(per_target) for j, reason, sim in cands]
    verdicts = verifier.verify([(t, r) for t, r, _, _ in pairs])
    report = [Containment(t.id, r.id, t.question, r.question, t.answers, reason, round(sim, 4),
                          contained, why)
              for (t, r, reason, sim), (contained, why) in zip(pairs, verdicts)]
    removed = {row.target_id for row in report if row.is_contained}
    kept = [it for it in items if it.id not in removed]
    summary = {
        "verifier": verifier.name,
        "targets": len(targets), "references": len(references),
        "candidate_pairs": len(pairs),
        "candidates_by_reason": dict(Counter(reason for _, _, reason, _ in pairs)),
        "max_calls_per_target": max((len(c) for c in per_target), default=0),
        "contained_pairs": sum(row.is_contained for row in report),
        "removed": dict(Counter(it.split for it in targets if it.id in removed)),
    }
    return kept, report, summary


def score(items: Sequence[QAItem], removed: set[str], cfg: DedupConfig) -> dict | None:
    """Precision and recall of the removed targets against fact ground truth; None unless
    every target and reference item has a fact."""
    targets = [it for it in items if it.split in cfg.targets]
    references = [it for it in items if it.split in cfg.references]
    if not targets or any(it.fact is None for it in targets + references):
        return None
    reference_facts = {fact_key(r) for r in references}
    truth = {t.id for t in targets if fact_key(t) in reference_facts}
    tp, fp, fn = len(truth & removed), len(removed - truth), len(truth - removed)
    return {"true_leaks": len(truth), "removed": len(removed), "true_positives": tp,
            "false_positives": fp, "false_negatives": fn,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0}


def _containment_from_dict(obj: dict, where: str) -> Containment:
    from recall.contract import require_field

    return Containment(
        target_id=require_field(obj, "target_id", str, where),
        reference_id=require_field(obj, "reference_id", str, where),
        target_question=require_field(obj, "target_question", str, where),
        reference_question=require_field(obj, "reference_question", str, where),
        answers=tuple(require_field(obj, "answers", list, where)),
        reason=require_field(obj, "reason", str, where),
        score=float(require_field(obj, "score", (int, float), where)),
        is_contained=require_field(obj, "is_contained", bool, where),
        reasoning=require_field(obj, "reasoning", str, where))


def read_report(path) -> list[Containment]:
    from recall.contract import read_jsonl

    return list(read_jsonl(path, _containment_from_dict))


def report_markdown(summary: dict, report: Sequence[Containment], examples: int = 15) -> str:
    """Counts, the score where ground truth exists, and flagged pairs with their reasoning."""
    lines = ["# Train/test dedup", "",
             f"Verifier: **{summary['verifier']}**. {summary['targets']} target items checked "
             f"against {summary['references']} training items: {summary['candidate_pairs']} "
             f"candidate pairs ({summary['candidates_by_reason']}), at most "
             f"{summary['max_calls_per_target']} verifier calls per target item.", "",
             f"Contained pairs: {summary['contained_pairs']}; removed: {summary['removed']}.", ""]
    if "score" in summary:
        s = summary["score"]
        lines += [f"Against ground truth: precision {s['precision']:.3f}, recall "
                  f"{s['recall']:.3f} ({s['true_leaks']} true leaks, {s['false_positives']} "
                  f"false positives, {s['false_negatives']} missed).", ""]
    flagged = [r for r in report if r.is_contained]
    lines += [f"## Flagged pairs (first {min(examples, len(flagged))} of {len(flagged)})", "",
              "| test item | test question | train question | answers | reasoning |",
              "|---|---|---|---|---|"]
    for r in flagged[:examples]:
        cells = [r.target_id, r.target_question, r.reference_question, " ; ".join(r.answers),
                 r.reasoning]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"
