import pytest

from recall.contract import QAItem, SamplingSettings
from recall.judge.interface import Verdict
from recall.judge.rules import RuleJudge
from recall.sampling import accuracy_by_split, sample_items


class ScriptedEngine:
    name = "scripted"

    def __init__(self, outputs):
        self.outputs = outputs

    def generate(self, prompts, settings):
        return [self.outputs[p] for p in prompts]


class CountingJudge(RuleJudge):
    """The rule judge, counting batches; answers 'pass' get no verdict."""

    def __init__(self):
        self.batches = []

    def judge(self, requests):
        self.batches.append(len(requests))
        return [Verdict(None, "no reply") if r.candidate == "pass" else v
                for r, v in zip(requests, super().judge(requests))]


ITEMS = [QAItem("a", "toy", "where a ?", ("velmor",), None, "test"),
         QAItem("b", "toy", "where b ?", ("zantrix", "zantrix city"), None, "test"),
         QAItem("c", "toy", "where c ?", ("orlan",), None, "val")]
OUTPUTS = {"question : where a ? answer :": ["velmor", "zantrix", "pass"],
           "question : where b ? answer :": ["zantrix city", "velmor", "Zantrix"],
           "question : where c ? answer :": ["x", "y", "orlan"]}


def test_every_completion_scored_against_its_own_item_in_one_judge_batch():
    judge = CountingJudge()
    records, unjudged = sample_items(ScriptedEngine(OUTPUTS), judge, ITEMS,
                                     SamplingSettings(n=3, temperature=1.0), "base")
    assert judge.batches == [9]
    assert [r.scores for r in records] == [(1, 0, 0), (1, 0, 1), (0, 0, 1)]
    assert unjudged == 1  # scored 0, never 1, and counted
    assert accuracy_by_split(records) == {"test": pytest.approx(0.5), "val": pytest.approx(1 / 3)}


def test_engine_returning_too_few_completions_is_an_error():
    short = {**OUTPUTS, "question : where b ? answer :": ["zantrix"]}
    with pytest.raises(RuntimeError, match="returned 1 completions for item b, expected 3"):
        sample_items(ScriptedEngine(short), RuleJudge(), ITEMS, SamplingSettings(n=3), "base")


class RecordingEngine(ScriptedEngine):
    def generate(self, prompts, settings):
        self.settings = settings
        return super().generate(prompts, settings)


def test_cot_greedy_judges_the_final_answer_and_keeps_the_reasoning():
    from recall.prompts import COT
    from recall.sampling import cot_greedy

    outputs = {COT.render("where a ?"): ["a lives near the coast.\nanswer : velmor"],
               COT.render("where b ?"): ["b moved twice; answer : zantrix at first\nanswer : orlan"],
               COT.render("where c ?"): ["it must be orlan"]}
    engine = RecordingEngine(outputs)
    records, reasoning, unjudged = cot_greedy(engine, RuleJudge(), ITEMS, 64, "base")
    assert engine.settings == SamplingSettings(n=1, temperature=0.0, max_tokens=64)
    assert [r.completions for r in records] == [("velmor",), ("orlan",), ("",)]
    assert [r.scores for r in records] == [(1,), (0,), (0,)]  # no marker: graded wrong
    assert {r.prompt_style for r in records} == {"cot"} and unjudged == 0
    assert reasoning[1] == {"id": "b", "answer": "orlan",
                            "completion": "b moved twice; answer : zantrix at first\nanswer : orlan"}
