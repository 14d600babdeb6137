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
from recall.judge.interface import JudgeError
from recall.judge.rules import normalize_answer


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


def shared_answer(a: Sequence[str], b: Sequence[str]) -> str | None:
    """A normalised answer both lists hold, or one whose words all occur in an answer of the
    other ("December 1972" in "14 December 1972 UTC"); None if there is none."""
    na, nb = {normalize_answer(x) for x in a} - {""}, {normalize_answer(x) for x in b} - {""}
    if na & nb:
        return sorted(na & nb)[0]
    for x in sorted(na):
        for y in sorted(nb):
            short, long_ = sorted((x.split(), y.split()), key=len)
            if set(short) <= set(long_) and any(not w.isdigit() or len(w) == 4 for w in short):
                return " ".join(short)
    return None


class HeuristicVerifier:
    """Contained iff the two items share an answer AND one side's subject survives in the other.

    Words are compared by `recall.wording` (hyphens split, compounds joined, fuzzy inflection,
    exact numbers). A side's content words are those that are not English stop words
    (scikit-learn's list) and occur in at most `max_df` of all questions; each weighs its
    inverse document frequency, so names weigh most. One side's subject survives in the other
    when its rarest content word occurs there AND its content words found there carry at
    least `min_overlap` of its weight. The shared answer rules out a same-subject question
    about another relation; the rarest word and the weight rule out the same answer about
    another subject (a namesake shares a first name but not the rarer surname); a strong
    overlap lets a rewording replace one rare word ("concept" for "idea"), at the price of
    entity swaps in an otherwise identical template ("802.11a" vs "802.11g"). A side with
    fewer than two content words cannot establish containment; the same normalised question
    with a shared answer always does.

    Where it still loses to an LLM verifier: a rewording that replaces the subject's own words
    ("the Dutch flag" for "the Netherlands flag", "career receptions" for "most catches"),
    and paraphrase that leaves one rare word in common. Measured on the labelled real-data
    fixture (tests/fixtures/leakage.jsonl; benchmarks/dedup_fixture.py).
    """

    name = "heuristic"

    def __init__(self, questions: Sequence[str], max_df: float, min_overlap: float = 0.6,
                 strong_overlap: float = 0.65):
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        from recall.wording import Vocabulary

        self.vocabulary = Vocabulary(questions, max_df, frozenset(ENGLISH_STOP_WORDS))
        self.min_overlap, self.strong_overlap = min_overlap, strong_overlap

    def _survives(self, tokens, other) -> tuple[bool, list[str], list[str]]:
        """(subject survives, content words found, content words missing) of `tokens`."""
        from recall.wording import compounds, matched

        content = self.vocabulary.content(tokens)
        if len(content) < 2:
            return False, [], [tokens[i] for i in content]
        other_compounds = compounds(other)
        hit = {i for i in content if matched(tokens, i, other, other_compounds)}
        weight = {i: self.vocabulary.idf(tokens[i]) for i in content}
        rarest = max(content, key=lambda i: (weight[i], -i))
        share = sum(weight[i] for i in hit) / sum(weight.values())
        return (share >= self.min_overlap and (rarest in hit or share >= self.strong_overlap),
                [tokens[i] for i in content if i in hit],
                [tokens[i] for i in content if i not in hit])

    def verify(self, pairs: Sequence[tuple[QAItem, QAItem]]) -> list[tuple[bool, str]]:
        from recall.wording import words

        out = []
        for target, ref in pairs:
            answer = shared_answer(target.answers, ref.answers)
            if answer is None:
                out.append((False, "no answer in common"))
                continue
            if normalize_answer(target.question) == normalize_answer(ref.question):
                out.append((True, f"answer '{answer}' and the same normalised question"))
                continue
            t_words, r_words = words(target.question), words(ref.question)
            sides = {"train": self._survives(r_words, t_words),
                     "test": self._survives(t_words, r_words)}
            side = next((name for name, (ok, _, _) in sides.items() if ok), None)
            if side:
                _, found, missing = sides[side]
                out.append((True, f"answer '{answer}'; the {side} question's subject words "
                                  f"{found} found, {missing} not"))
            else:
                out.append((False, f"answer '{answer}' shared, but test words "
                                   f"{sides['test'][2]} and train words {sides['train'][2]} "
                                   "differ: another subject"))
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
        from recall.judge.completions import CompletionClient
        from recall.judge.prompts import CONTAINMENT

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
def open_verifier(cfg: DedupConfig, judge: JudgeConfig, questions: Sequence[str],
                  compute=None) -> Iterator:
    """The configured verifier; for `llm`, the judge server as `open_judge` finds it:
    `judge.base_url`, else the one `recall serve-judge` started, else served here (on the
    GPUs as `compute`, the params' ComputeConfig, says)."""
    if cfg.verifier == "none":
        yield NoVerifier()
    elif cfg.verifier == "heuristic":
        yield HeuristicVerifier(questions, cfg.max_df, cfg.min_overlap, cfg.strong_overlap)
    else:
        from recall.judge.server import serve_judge, shared_server

        # Never a second server beside the shared one: on a GPU node the two would not fit.
        if url := judge.base_url or shared_server(judge.model):
            yield LLMVerifier(judge, url, judge.model)
            return
        with serve_judge(judge.model, compute=compute) as base_url:
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
        # what ran, so a test (and a reader) can tell dense + LLM from TF-IDF + heuristic
        "retrieval": "dense" if cfg.embedding_model else "tfidf",
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
