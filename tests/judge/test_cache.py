import pytest

from recall.judge.cache import VerdictCache, model_identity, verdict_key


def test_a_retrained_judge_at_the_same_path_gets_new_cache_keys(tmp_path):
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "model.safetensors").write_bytes(b"old weights")
    old = model_identity(str(judge))
    assert old.startswith(f"{judge}@") and model_identity(str(judge)) == old
    (judge / "model.safetensors").write_bytes(b"new weights")
    assert model_identity(str(judge)) != old
    # A served model name (no such directory) is its own identity.
    assert model_identity("Qwen/Qwen2.5-72B-Instruct") == "Qwen/Qwen2.5-72B-Instruct"


def test_cache_round_trip_and_key_normalises_the_candidate(tmp_path):
    k1 = verdict_key("m", "toy/v1", "q", ("b", "a"), "Velmor City.")
    assert k1 == verdict_key("m", "toy/v1", "q", ("a", "b"), "velmor city")
    assert k1 != verdict_key("m2", "toy/v1", "q", ("a", "b"), "velmor city")
    cache = VerdictCache(tmp_path / "v.sqlite")
    assert cache.get_many([k1]) == {}
    cache.put_many([(k1, 1, "1")])
    assert VerdictCache(tmp_path / "v.sqlite").get_many([k1, "other"]) == {k1: 1}


def test_the_cache_is_where_the_environment_says_once_params_turn_it_on(tmp_path, monkeypatch):
    from recall.judge.cache import CACHE_ENV, open_cache

    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert open_cache("") is None
    assert open_cache(str(tmp_path / "a.sqlite")).path == tmp_path / "a.sqlite"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "moved.sqlite"))
    assert open_cache(str(tmp_path / "a.sqlite")).path == tmp_path / "moved.sqlite"
    assert open_cache("") is None  # judge.cache '' (e.g. measuring the bare judge) stays off
    monkeypatch.setenv(CACHE_ENV, "postgresql+psycopg://recall:s3cret@127.0.0.1:9/verdicts")
    with pytest.raises(RuntimeError, match=r"verdict cache: cannot reach Postgres at "
                                           r"127\.0\.0\.1:9/verdicts \(\$RECALL_VERDICT_CACHE") as e:
        open_cache("cache/verdicts.sqlite")
    assert "s3cret" not in str(e.value)


HOST = """
import sys
from recall.judge.cache import PostgresVerdictCache
cache = PostgresVerdictCache(sys.argv[1])
start = int(sys.argv[2])
for i in range(start, start + 300, 10):  # overlapping ranges: both hosts write 100..199
    cache.put_many([(f"k{j}", j % 2, str(j % 2)) for j in range(i, i + 10)])
print(len(cache.get_many(f"k{j}" for j in range(400))))
"""


@pytest.mark.slow  # a real PostgreSQL (the fixture rule marks too late for -m; test_sweep.py likewise)
def test_postgres_cache_is_shared_by_hosts_writing_at_once_and_survives_a_dropped_link(postgres):
    import subprocess
    import sys

    import psycopg

    from recall.judge.cache import PostgresVerdictCache

    url = postgres("verdicts")
    hosts = [subprocess.Popen([sys.executable, "-c", HOST, url, str(start)],
                              stdout=subprocess.PIPE, text=True) for start in (0, 100)]
    seen = [int(h.communicate(timeout=120)[0]) for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0]
    assert max(seen) == 400 and min(seen) >= 300  # each saw its own 300, the last all 400
    cache = PostgresVerdictCache(url)
    assert len(cache) == 400
    assert cache.get_many(["k7", "k8", "nope"]) == {"k7": 1, "k8": 0}
    # The server drops the connection (a restart): the next call reconnects.
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = 'verdicts' AND pid <> pg_backend_pid()")
    cache.put_many([("k400", 1, "1")])
    assert cache.get_many(["k400", "k0"]) == {"k400": 1, "k0": 0}
