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
