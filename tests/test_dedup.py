"""Dedup on the toy world's planted leaks and distractors, hand cases, and the LLM verifier's
strictness against a scripted OpenAI-compatible server."""

import dataclasses
import re

import pytest
from completions_server import completions_server

from recall.contract import Fact, QAItem, write_jsonl
from recall.dedup import (
    DedupError,
    HeuristicVerifier,
    LLMVerifier,
    deduplicate,
    open_verifier,
    parse_containment,
    read_report,
    score,
)
from recall.world import generate_world


def _item(id, split, question, answers, fact=None):
    return QAItem(id, "t", question, tuple(answers), fact, split)


def test_toy_world_planted_leaks_found_and_distractors_kept(micro_params):
    params = dataclasses.replace(micro_params, world=dataclasses.replace(
        micro_params.world, planted_leaks=30, planted_distractors=30))
    world = generate_world(params.world, seed=1)
    items = list(world.items)
    verifier = HeuristicVerifier([it.question for it in items], params.dedup.max_df)
    kept, report, summary = deduplicate(items, params.dedup, verifier)
    removed = {it.id for it in items} - {it.id for it in kept}
    assert removed == set(world.planted["leaks"])  # every leak, nothing else
    assert not removed & set(world.planted["distractors"])
    assert summary["max_calls_per_target"] <= params.dedup.top_k
    assert summary["removed"] == {"test": 30}
    s = score(items, removed, params.dedup)
    assert (s["precision"], s["recall"], s["true_leaks"]) == (1.0, 1.0, 30)


def test_same_answer_other_subject_is_not_contained_but_rewording_is():
    train = _item("r", "train", "where was bala kiro born ?", ["zorn", "zorn city"])
    filler = [_item(f"f{i}", "train", f"where was name{i} other{i} born ?", ["x"]) for i in range(30)]
    reworded = _item("t1", "test", "what is the birthplace of bala kiro ?", ["zorn"])
    namesake = _item("t2", "test", "where was bala tuzo born ?", ["zorn"])
    other_relation = _item("t3", "test", "which company does bala kiro work for ?", ["brix"])
    items = [train, *filler, reworded, namesake, other_relation]
    verifier = HeuristicVerifier([it.question for it in items], max_df=0.15)  # bala: 4 of 34
    verdicts = verifier.verify([(reworded, train), (namesake, train), (other_relation, train)])
    assert [v for v, _ in verdicts] == [True, False, False]
    assert "bala" in verdicts[0][1] and "kiro" in verdicts[0][1]
    assert verdicts[1][1].startswith("answer 'zorn' shared") and "tuzo" in verdicts[1][1]
    assert verdicts[2][1] == "no answer in common"


def test_exact_question_match_is_a_candidate_even_beyond_retrieval(micro_params):
    cfg = dataclasses.replace(micro_params.dedup, top_k=1)
    refs = [_item(f"r{i}", "train", f"Who Wrote Song {i}?", [f"a{i}"]) for i in range(5)]
    target = _item("t", "test", "who wrote song 3", ["a3"])
    items = refs + [target]
    kept, report, summary = deduplicate(items, cfg, HeuristicVerifier(
        [i.question for i in items], 0.5))
    assert [(r.reference_id, r.reason) for r in report] == [("r3", "normalized_question")]
    assert "t" not in {it.id for it in kept} and summary["max_calls_per_target"] == 1


def test_fact_keys_count_only_when_configured(micro_params):
    fact = Fact("Tasmania", "capital")
    ref = _item("r", "train", "What is the capital of Tasmania?", ["Hobart"], fact)
    target = _item("t", "test", "Tasmania's seat of government is which city?", ["Hobart"], fact)
    on = dataclasses.replace(micro_params.dedup, use_fact_keys=True, top_k=1)
    _, report, _ = deduplicate([ref, target], on, HeuristicVerifier(["x"], 1.0))
    assert report[0].reason == "fact_key"


def test_report_round_trips(tmp_path, micro_params):
    world = generate_world(micro_params.world, seed=0)
    items = list(world.items)
    _, report, _ = deduplicate(items, micro_params.dedup,
                               HeuristicVerifier([i.question for i in items], 0.05))
    write_jsonl(tmp_path / "report.jsonl", report)
    assert read_report(tmp_path / "report.jsonl") == report


def test_parse_containment_is_strict():
    assert parse_containment('{"is_contained": true, "reasoning": "same"}') == (True, "same")
    for bad in ('{"is_contained": "yes", "reasoning": "x"}', '{"is_contained": true}',
                'true', '{"is_contained": false, "reasoning": "x", "extra": 1}', "not json"):
        with pytest.raises(ValueError):
            parse_containment(bad)


class _Script:
    """Replies keyed by a fragment of the prompt ("??" for none), and the bodies received."""

    def __init__(self):
        self.script: dict = {}
        self.bodies: list = []

    def __call__(self, prompt: str) -> str:
        return next((reply for key, reply in self.script.items() if key in prompt), "??")


@pytest.fixture
def scripted_server():
    script = _Script()
    with completions_server(script) as (url, bodies):
        script.bodies = bodies
        yield url, script


def _verify_scripted(scripted_server, judge_cfg, script: dict):
    url, handler = scripted_server
    handler.script = {f"Test question: {q}": reply for q, reply in script.items()}
    ref = _item("r", "train", "ref?", ["a"])
    return LLMVerifier(judge_cfg, url, "judge-model").verify(
        [(_item(f"t{i + 1}", "test", q, ["a"]), ref) for i, q in enumerate(script)])


def test_llm_verifier_sends_schema_and_parses(scripted_server, micro_params):
    verdicts = _verify_scripted(scripted_server, micro_params.judge, {
        "same?": '{"is_contained": true, "reasoning": "same fact"}',
        "other?": '{"is_contained": false, "reasoning": "other"}'})
    handler = scripted_server[1]
    assert verdicts == [(True, "same fact"), (False, "other")]
    assert len(handler.bodies) == 1  # both pairs in one batched request
    body = handler.bodies[0]
    assert len(body["prompt"]) == 2
    assert body["model"] == "judge-model" and body["temperature"] == 0.0
    # constrained to the verdict's JSON shape, which both scripted replies match
    pattern = re.compile(body["structured_outputs"]["regex"])
    assert all(pattern.fullmatch(r) for r in ('{"is_contained": true, "reasoning": "same fact"}',
                                              '{"is_contained":false,"reasoning":"other"}'))
    assert not pattern.fullmatch('{\n\n"is_contained": true}')


def test_llm_verifier_without_verdict_is_an_error_naming_the_pair(scripted_server, micro_params):
    with pytest.raises(DedupError, match=r"no verdict for 1 of 2 pairs; first: \(t2, r\): not JSON"):
        _verify_scripted(scripted_server, micro_params.judge, {
            "fine?": '{"is_contained": false, "reasoning": "no"}', "garbled?": "yes it is"})


def test_llm_verifier_unreachable_is_an_error(micro_params):
    cfg = dataclasses.replace(micro_params.judge, retries=1, backoff_s=0.01, timeout_s=2)
    verifier = LLMVerifier(cfg, "http://127.0.0.1:9", "m")
    ref = _item("r", "train", "ref?", ["a"])
    with pytest.raises(DedupError, match=r"\(t, r\): unreachable"):
        verifier.verify([(_item("t", "test", "q?", ["a"]), ref)])


def test_min_overlap_tolerates_one_word_of_four_and_stop_words_never_count():
    # A real pair: NQ-open dev vs EfficientQA dev.
    train = _item("r", "train", "who sings if this world were mine with luther vandross",
                  ["Tammi Terrell"])
    test = _item("t", "test", "who sang if this world were mine with luther vandross",
                 ["tammi terrell", "Cheryl Lynn"])
    filler = [_item(f"f{i}", "train", f"who played the role number {i} here", ["x"])
              for i in range(30)]
    questions = [it.question for it in [train, test, *filler]]
    strict = HeuristicVerifier(questions, max_df=0.5, min_overlap=1.0, strong_overlap=1.0)
    loose = HeuristicVerifier(questions, max_df=0.5, min_overlap=0.6, strong_overlap=0.65)
    # Content words {sings, world, luther, vandross} vs {sang, ...}: 'who if this were mine
    # with' are stop words. 'sings' occurs once, so it is the rarest word, and it is missing:
    # the three found carry 0.73 of the weight, above strong_overlap.
    assert strict.verify([(test, train)])[0][0] is False
    verdict, why = loose.verify([(test, train)])[0]
    assert verdict is True
    assert why == ("answer 'tammi terrell'; the train question's subject words ['world', "
                   "'luther', 'vandross'] found, ['sings'] not")
    narrower = HeuristicVerifier(questions, max_df=0.5, min_overlap=0.6, strong_overlap=0.75)
    assert narrower.verify([(test, train)])[0][0] is False


def test_one_distinctive_word_is_not_enough():
    train = _item("r", "train", "when did india last win olympic gold", ["1980"])
    test = _item("t", "test", "when did the us not go to the olympics", ["1980"])
    verifier = HeuristicVerifier([train.question, test.question] * 20, max_df=0.9)
    assert verifier.verify([(test, train)])[0][0] is False


def test_the_llm_verifier_uses_the_served_judge_and_starts_no_server(tmp_path, micro_params,
                                                                     monkeypatch):
    from recall.judge.server import SHARED_DIGEST_ENV, SHARED_URL_ENV
    from recall.staging import weights_digest

    judge_dir = tmp_path / "judge"
    judge_dir.mkdir()
    (judge_dir / "model.safetensors").write_bytes(b"w")
    monkeypatch.setenv(SHARED_URL_ENV, "http://127.0.0.1:9")
    monkeypatch.setenv(SHARED_DIGEST_ENV, weights_digest(judge_dir))

    def no_second_server(*args, **kwargs):
        raise AssertionError("started a judge server beside the shared one")
    monkeypatch.setattr("recall.judge.server.start_server", no_second_server)
    cfg = dataclasses.replace(micro_params.dedup, verifier="llm")
    judge = dataclasses.replace(micro_params.judge, backend="llm", base_url="",
                                model=str(judge_dir))
    with open_verifier(cfg, judge, []) as verifier:
        assert verifier.client.base_url == "http://127.0.0.1:9"
