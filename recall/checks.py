"""Great Expectations suites over the deduplicated splits; the `validate` stage runs them.

One frame holds every item. Target rows (val, test) carry their id, normalised question,
fact key and the train item a verified-contained pair ties them to, in `target_*` columns;
reference rows leave those null, which GX skips. Three suites run in one Checkpoint:
- schema: unique ids, non-empty question and answers, valid split values;
- leakage: no target id, normalised question or fact key appears among the reference
  (training) items; no target is still tied to a training item by the dedup report; and no
  target is a near duplicate of a training item (`near_duplicates`): a second line of
  defence that shares nothing with dedup's retrieval or verifier, so it still fails the
  stage when dedup is off, misconfigured, or its retrieval missed a copy;
- distribution: both train and test present, sane question lengths and answer counts.
Data Docs are built into `docs_dir`. A failure names the expectation and the offending items.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from recall.contract import SPLITS, QAItem
from recall.dedup import Containment, fact_key
from recall.judge.rules import normalize_answer


@dataclass(frozen=True)
class Failure:
    suite: str
    expectation: str
    column: str
    offending: tuple[str, ...]  # item ids (or values where a row has no id)
    partners: dict[str, tuple[str, ...]]  # leakage: offending id -> the training items it leaks

    def describe(self, limit: int = 20) -> str:
        shown = [f"{i} (train: {', '.join(self.partners[i])})" if self.partners.get(i) else i
                 for i in self.offending[:limit]]
        more = f" ... and {len(self.offending) - limit} more" if len(self.offending) > limit else ""
        return (f"{self.suite}: {self.expectation}({self.column}) failed for "
                f"{len(self.offending)} item(s): {'; '.join(shown)}{more}")


# Each leakage column of a target row and the column of reference rows it must not match.
LEAK_COLUMNS = {"target_id": "id", "target_question": "question_norm", "target_fact": "fact"}


def _partners(frame, column: str, ids: Sequence[str], references: Sequence[str]
              ) -> dict[str, tuple[str, ...]]:
    """For a leakage column, the reference (training) items each offending target matches."""
    if column in ("target_contained_by", "target_near_duplicate_of"):
        tied = dict(zip(frame["id"], frame[column]))
        return {i: (tied[i],) for i in ids if tied.get(i)}
    if column not in LEAK_COLUMNS:
        return {}
    refs = frame[frame["split"].isin(list(references))]
    by_value: dict[str, list[str]] = {}
    for value, ref_id in zip(refs[LEAK_COLUMNS[column]], refs["id"]):
        by_value.setdefault(value, []).append(ref_id)
    values = dict(zip(frame["id"], frame[column]))
    return {i: tuple(by_value.get(values.get(i), ())) for i in ids}


def near_duplicates(items: Sequence[QAItem], targets: Sequence[str], references: Sequence[str],
                    threshold: float) -> dict[str, tuple[str, float]]:
    """Target id -> (training id, similarity) for targets whose question nearly copies a
    training question that has an answer in common: cosine of TF-IDF vectors over
    word-boundary character 3-5-grams at or above `threshold`. Only pairs sharing a
    normalised answer are compared, so the check is linear in practice."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    tgts = [it for it in items if it.split in targets]
    refs = [it for it in items if it.split in references]
    if not tgts or not refs:
        return {}
    by_answer: dict[str, list[int]] = {}
    for j, ref in enumerate(refs):
        for answer in {normalize_answer(a) for a in ref.answers}:
            by_answer.setdefault(answer, []).append(j)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    vectorizer.fit([it.question for it in tgts + refs])
    t_vec = vectorizer.transform([it.question for it in tgts])
    r_vec = vectorizer.transform([it.question for it in refs])
    out = {}
    for i, target in enumerate(tgts):
        shared = sorted({j for a in target.answers for j in by_answer.get(normalize_answer(a), ())})
        if shared:
            sims = (t_vec[i] @ r_vec[shared].T).toarray()[0]
            best = int(sims.argmax())
            if sims[best] >= threshold:
                out[target.id] = (refs[shared[best]].id, round(float(sims[best]), 3))
    return out


def items_frame(items: Sequence[QAItem], report: Sequence[Containment], targets: Sequence[str],
                references: Sequence[str], near_similarity: float):
    import pandas as pd

    ref_ids = {it.id for it in items if it.split in references}
    near = near_duplicates(items, targets, references, near_similarity)
    tied = {}
    for row in report:
        if row.is_contained and row.reference_id in ref_ids:
            tied.setdefault(row.target_id, row.reference_id)
    rows = []
    for it in items:
        row = {"id": it.id, "split": it.split, "dataset": it.dataset,
               "question": it.question.strip(), "question_norm": normalize_answer(it.question),
               "fact": fact_key(it), "n_answers": len(it.answers),
               "min_answer_chars": min((len(a.strip()) for a in it.answers), default=0)}
        target = it.split in targets
        for column, source in LEAK_COLUMNS.items():
            row[column] = row[source] if target else None
        row["target_contained_by"] = tied.get(it.id) if target else None
        row["target_near_duplicate_of"] = near[it.id][0] if it.id in near else None
        rows.append(row)
    return pd.DataFrame(rows)


def _suites(frame, references: Sequence[str]) -> dict[str, list]:
    import great_expectations as gx

    E = gx.expectations
    refs = frame[frame["split"].isin(list(references))]
    return {
        "schema": [
            E.ExpectColumnValuesToBeUnique(column="id"),
            E.ExpectColumnValuesToNotBeNull(column="id"),
            E.ExpectColumnValueLengthsToBeBetween(column="question", min_value=1),
            E.ExpectColumnValuesToBeBetween(column="n_answers", min_value=1),
            E.ExpectColumnValuesToBeBetween(column="min_answer_chars", min_value=1),
            E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        ],
        "leakage": [
            *(E.ExpectColumnValuesToNotBeInSet(column=column,
                                               value_set=sorted(set(refs[source].dropna())))
              for column, source in LEAK_COLUMNS.items()),
            E.ExpectColumnValuesToBeNull(column="target_contained_by"),
            E.ExpectColumnValuesToBeNull(column="target_near_duplicate_of"),
        ],
        "distribution": [
            E.ExpectColumnDistinctValuesToContainSet(column="split", value_set=["train", "test"]),
            E.ExpectColumnValueLengthsToBeBetween(column="question", min_value=8, max_value=1000),
            E.ExpectColumnValuesToBeBetween(column="n_answers", min_value=1, max_value=100),
            E.ExpectColumnProportionOfUniqueValuesToBeBetween(column="question", min_value=0.9),
        ],
    }


def _run_id():
    """One fixed run name and time: GX names a run's pages by the clock otherwise."""
    from datetime import datetime, timezone

    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name="validate", run_time=datetime(2000, 1, 1, tzinfo=timezone.utc))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CLOCK = re.compile(r"\d{8}T\d{6}\.\d{6}Z|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
_LOGO = re.compile(r"(logo-long\.png)\?[^\"']*")


def _reproducible_docs(docs_dir: Path) -> None:
    """Data Docs as a function of the data alone (reports/gx is a DVC output): the render
    time and data-context id in the logo's URL, the validation time, and the random ids GX
    gives collapsible blocks are replaced by fixed text and ids numbered in page order."""
    for page in docs_dir.rglob("*.html"):
        text = _LOGO.sub(r"\1", page.read_text())
        text = _CLOCK.sub("2000-01-01T00:00:00Z", text)
        page.write_text(_UUID.sub(_numbered({}), text))


def _numbered(ids: dict[str, str]):
    """A re.sub replacement: each distinct match becomes block-<n>, n in order of appearance."""
    return lambda m: ids.setdefault(m.group(0), f"block-{len(ids)}")


def run_checks(items: Sequence[QAItem], report: Sequence[Containment], targets: Sequence[str],
               references: Sequence[str], docs_dir: Path, near_similarity: float
               ) -> tuple[bool, list[Failure], dict]:
    """Run the three suites in one Checkpoint; (success, failures, counts per suite).
    `near_similarity`: the `validate.near_duplicate_similarity` threshold."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network, no telemetry
    import great_expectations as gx

    frame = items_frame(items, report, targets, references, near_similarity)
    with tempfile.TemporaryDirectory() as root:
        context = gx.get_context(mode="file", project_root_dir=root)
        batch = (context.data_sources.add_pandas("recall").add_dataframe_asset("items")
                 .add_batch_definition_whole_dataframe("all"))
        definitions = []
        for name, expectations in _suites(frame, references).items():
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for expectation in expectations:
                suite.add_expectation(expectation)
            definitions.append(context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch, suite=suite)))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name="recall_splits", validation_definitions=definitions,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}))
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=_run_id())
        site = Path(root) / "gx" / "uncommitted" / "data_docs" / "local_site"
        shutil.rmtree(docs_dir, ignore_errors=True)
        shutil.copytree(site, docs_dir)
    _reproducible_docs(docs_dir)
    failures, counts = [], {}
    for run in result.run_results.values():
        suite = run.suite_name
        counts[suite] = {"expectations": len(run.results),
                         "failed": sum(not r.success for r in run.results)}
        for r in run.results:
            if not r.success:
                rows = r.result.get("unexpected_index_list") or []
                offending = tuple(str(x["id"]) if isinstance(x, dict) else str(x) for x in rows)
                column = r.expectation_config.kwargs.get("column", "")
                offending = offending or tuple(map(str, r.result.get("partial_unexpected_list")
                                                   or [r.result.get("observed_value")]))
                partners = _partners(frame, column, offending, references) if (
                    suite == "leakage") else {}
                failures.append(Failure(suite, r.expectation_config.type, column, offending,
                                        partners))
    return bool(result.success), failures, counts
