"""Item-level tests by hand: exact McNemar, the paired bootstrap, t intervals, verdicts."""

import pytest

from recall.significance import mcnemar, paired_bootstrap, seed_interval, seed_means, verdict


def _runs(b, c, both_right=5, both_wrong=4):
    """Two runs over the same items: b right only in the first, c right only in the second."""
    first, second, n = {}, {}, 0
    for ok1, ok2, count in ((1, 0, b), (0, 1, c), (1, 1, both_right), (0, 0, both_wrong)):
        for _ in range(count):
            first[f"i{n}"], second[f"i{n}"] = bool(ok1), bool(ok2)
            n += 1
    return first, second


def test_mcnemar_exact_p_by_hand():
    # b=1, c=6: 7 discordant items; p = 2 * P(X <= 1), X ~ Bin(7, 1/2) = 2 * (1 + 7) / 128
    assert mcnemar(*_runs(1, 6)) == {"items": 16, "b": 1, "c": 6, "p": pytest.approx(16 / 128)}
    # b=2, c=10: p = 2 * (1 + 12 + 66) / 4096
    assert mcnemar(*_runs(2, 10))["p"] == pytest.approx(158 / 4096)
    # symmetric, and no discordant item is p = 1, not an error
    assert mcnemar(*_runs(6, 1))["p"] == pytest.approx(16 / 128)
    assert mcnemar(*_runs(0, 0))["p"] == 1.0
    with pytest.raises(ValueError, match="different items"):
        mcnemar({"a": True}, {"b": True})


def test_paired_bootstrap_interval_and_p():
    first, second = _runs(0, 10, both_right=5, both_wrong=5)  # +10 of 20 items
    res = paired_bootstrap({i: float(v) for i, v in first.items()},
                           {i: float(v) for i, v in second.items()}, n_boot=2000)
    assert res["diff"] == pytest.approx(0.5) and res["items"] == 20
    assert 0.2 < res["ci"][0] < 0.5 < res["ci"][1] < 0.8 and res["p"] < 0.01
    assert verdict(res) == "reproduced" and verdict(res, direction=-1) == "not reproduced"
    same = paired_bootstrap({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}, n_boot=2000)
    assert same["diff"] == 0 and same["ci"][0] < 0 < same["ci"][1] and same["p"] == 1.0
    assert verdict(same) == "inconclusive"
    # seeded: the same call gives the same interval
    assert paired_bootstrap(first, second, 500) == paired_bootstrap(first, second, 500)


def test_seed_means_and_t_interval():
    assert seed_means([{"a": True, "b": False}, {"a": True, "b": True}]) == {"a": 1.0, "b": 0.5}
    with pytest.raises(ValueError, match="different items"):
        seed_means([{"a": True}, {"b": True}])
    res = seed_interval([0.70, 0.72, 0.74])
    # t(0.975, 2) = 4.3027, sd 0.02, n 3: half-width 4.3027 * 0.02 / sqrt(3) = 0.04968
    assert res["mean"] == pytest.approx(0.72)
    assert res["ci"] == pytest.approx([0.72 - 0.049683, 0.72 + 0.049683], abs=1e-5)
    assert seed_interval([0.7])["ci"] is None
