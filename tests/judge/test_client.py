"""The LLM judge against a real vLLM server on CPU serving the toy judge."""

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recall.judge.client import LLMJudge
from recall.judge.completions import per_rank_concurrency
from recall.judge.interface import JudgeError, JudgeRequest
from recall.judge.prompts import JUDGE_BINARY, JUDGE_SIMPLEQA, JUDGE_TOY

pytestmark = pytest.mark.slow


def _cfg(params, tmp_path, **kw):
    kw.setdefault("cache", str(tmp_path / "verdicts.sqlite"))
    kw.setdefault("require_core_words", False)  # these tests are about the LLM path
    return dataclasses.replace(params.judge, backend="llm", prompt="toy", **kw)


def _requests(world, n):
    items = list(world.items)
    return [JudgeRequest(items[i % len(items)].question, items[i % len(items)].answers,
                         f"{items[(i * 7) % len(items)].answers[0]}") for i in range(n)]


def test_parsing_is_anchored_and_strict():
    assert JUDGE_TOY.parse(" 1 ") == 1 and JUDGE_TOY.parse("0") == 0
    for bad in ["", "10", "1 0", "yes", "1."]:
        assert JUDGE_TOY.parse(bad) is None
    assert JUDGE_SIMPLEQA.parse("NOT_ATTEMPTED") == 0 and JUDGE_SIMPLEQA.parse("CORRECT") == 1
    assert JUDGE_SIMPLEQA.parse("CORRECT, because") is None
    assert JUDGE_BINARY.parse("1") == 1


def test_unparseable_reply_is_counted_never_correct(micro_params, tmp_path):
    judge = LLMJudge(_cfg(micro_params, tmp_path), "http://127.0.0.1:9", "m")
    verdict = judge._verdict("maybe")
    assert verdict.value is None and "unparseable" in verdict.reason
    assert judge.stats["unparseable"] == 1


def test_server_verdicts_are_parsed(judge_server, tmp_path):
    base_url, model, world, params = judge_server
    judge = LLMJudge(_cfg(params, tmp_path, fast_path=False), base_url, model)
    verdicts = judge.judge(_requests(world, 12))
    assert all(v.value in (0, 1) and v.reason == "llm" for v in verdicts)
    assert judge.stats["unparseable"] == 0 and judge.stats["calls"] == 12


def test_concurrency_cap_holds(judge_server, tmp_path):
    base_url, model, world, params = judge_server
    judge = LLMJudge(_cfg(params, tmp_path, fast_path=False, max_concurrency=4, batch_prompts=3,
                          cache=""), base_url, model)
    verdicts = judge.judge(_requests(world, 48))
    assert judge.max_in_flight == 4
    assert judge.stats["posts"] == 16 and judge.stats["calls"] == 48
    # Batched replies come back in prompt order: the same verdicts as one prompt per request.
    single = LLMJudge(_cfg(params, tmp_path, fast_path=False, batch_prompts=1, cache=""),
                      base_url, model).judge(_requests(world, 48))
    assert [v.value for v in verdicts] == [v.value for v in single]
    assert per_rank_concurrency(32, world_size=4) == 8


def test_dedup_fast_path_and_cache(judge_server, tmp_path):
    base_url, model, world, params = judge_server
    item = world.items[0]
    reqs = [JudgeRequest(item.question, item.answers, c)
            for c in [item.answers[0], "zz", "zz", "zz .", item.answers[-1]]]
    judge = LLMJudge(_cfg(params, tmp_path), base_url, model)
    verdicts = judge.judge(reqs)
    assert [v.reason for v in verdicts[:1]] == ["fast_path"] and verdicts[0].value == 1
    # "zz", "zz" and "zz ." normalise alike: one call serves all three.
    assert judge.stats["calls"] == 1 and judge.stats["deduplicated"] == 2
    again = judge.judge(reqs)
    assert judge.stats["calls"] == 1 and {v.reason for v in again[1:4]} == {"cache"}


CACHE_SCRIPT = """
import dataclasses, json, sys
from recall.config import load_params
from recall.judge.interface import JudgeRequest
from recall.judge.client import LLMJudge
if __name__ == "__main__":
    base_url, model, cache, reqs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    cfg = dataclasses.replace(load_params(sys.argv[5]).judge, backend="llm", prompt="toy",
                              cache=cache, fast_path=False, require_core_words=False)
    judge = LLMJudge(cfg, base_url, model)
    out = judge.judge([JudgeRequest(q, tuple(a), c) for q, a, c in reqs])
    print("RESULT" + json.dumps([[v.value, v.reason] for v in out] + [dict(judge.stats)]))
"""


def _judge_twice(judge_server, tmp_path, cache: Path, env: dict) -> tuple[list, list]:
    """The same 10 requests judged by two processes in turn, through `cache`."""
    base_url, model, world, _ = judge_server
    from conftest import ROOT

    reqs = _requests(world, 10)
    script = tmp_path / "judge_once.py"
    script.write_text(CACHE_SCRIPT)
    payload = json.dumps([[r.question, list(r.answers), r.candidate] for r in reqs])

    def run():
        proc = subprocess.run([sys.executable, str(script), base_url, model, str(cache), payload,
                               str(ROOT / "params.yaml")], capture_output=True, text=True,
                              timeout=300, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(next(x for x in proc.stdout.splitlines()
                               if x.startswith("RESULT"))[6:])

    first, second = run(), run()
    assert first[-1]["calls"] == 10 and "cache_hits" not in first[-1]
    assert second[-1].get("calls", 0) == 0 and second[-1]["cache_hits"] == 10
    assert [v[0] for v in first[:-1]] == [v[0] for v in second[:-1]]
    return first, second


def test_cache_is_shared_across_processes(judge_server, tmp_path):
    _judge_twice(judge_server, tmp_path, tmp_path / "shared.sqlite", {})
    assert (tmp_path / "shared.sqlite").exists()


def test_cache_in_postgres_is_shared_across_hosts(judge_server, postgres, tmp_path):
    from recall.judge.cache import CACHE_ENV, PostgresVerdictCache

    url = postgres("judge_verdicts")
    _judge_twice(judge_server, tmp_path, tmp_path / "unused.sqlite", {CACHE_ENV: url})
    assert not (tmp_path / "unused.sqlite").exists()  # judge.cache only turned it on
    assert len(PostgresVerdictCache(url)) == 10


def test_server_stopped_mid_batch_retries_then_fails_clearly(toy_judge, tmp_path):
    from recall.judge.server import free_port, start_server, stop_server, wait_healthy

    model_dir, world, params = toy_judge
    port = free_port()
    proc = start_server(str(model_dir), port, tmp_path / "server.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, proc, 300)
        judge = LLMJudge(_cfg(params, tmp_path, fast_path=False, max_concurrency=1, batch_prompts=4,
                              retries=2,
                              backoff_s=0.05, timeout_s=5, cache=""), base_url, str(model_dir))

        def stop_when_busy():
            while judge.stats["calls"] < 5:
                time.sleep(0.01)
            stop_server(proc)

        stopper = threading.Thread(target=stop_when_busy)
        stopper.start()
        with pytest.raises(JudgeError, match=r"failed \d+ of 300 requests after 2 retries"):
            judge.judge(_requests(world, 300))
        stopper.join()
        assert judge.stats["retries"] >= 2 and judge.stats["unreachable"] >= 1
    finally:
        stop_server(proc)


def test_unreachable_judge_yields_none_when_asked(micro_params, tmp_path):
    cfg = _cfg(micro_params, tmp_path, retries=1, backoff_s=0.01, timeout_s=1, fast_path=False)
    judge = LLMJudge(cfg, "http://127.0.0.1:9", "m", on_unreachable="none")
    verdicts = judge.judge([JudgeRequest("q", ("a b",), "c")])
    assert verdicts[0].value is None and verdicts[0].reason.startswith("unreachable")
    strict = LLMJudge(cfg, "http://127.0.0.1:9", "m")
    with pytest.raises(JudgeError, match="failed 1 of 1 requests"):
        strict.judge([JudgeRequest("q", ("a b",), "c")])


def test_core_word_gate_answers_only_certain_negatives_without_a_call(micro_params, tmp_path):
    # No server at all: a gated candidate needs none; one that keeps the name must ask.
    cfg = _cfg(micro_params, tmp_path, retries=0, timeout_s=1, require_core_words=True)
    judge = LLMJudge(cfg, "http://127.0.0.1:9", "m")
    gold = ("brak tolis university", "university of brak tolis", "brak tolis")
    verdicts = judge.judge([JudgeRequest("q", gold, "drin tolis university"),
                            JudgeRequest("q", gold, "tolis"),
                            JudgeRequest("q", gold, "university of brak tolis")])
    assert [(v.value, v.reason) for v in verdicts] == [(0, "core_words"), (0, "core_words"),
                                                       (1, "fast_path")]
    assert judge.stats["core_words"] == 2 and judge.stats["calls"] == 0
    with pytest.raises(JudgeError, match="failed 1 of 1 requests"):
        judge.judge([JudgeRequest("q", gold, "the brak tolis institute")])
