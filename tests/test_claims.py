"""Claims by hand: item-level tests per method, majority per item, the repair trend, shares
of the gain, normalised gain, and the findings' verdicts from them."""

import pytest

from recall.claims import (
    across_bases,
    item_tests,
    majority_by_item,
    normalised_gain,
    pass_at_k_change,
    repair_trend,
    share_of_gain,
)
from recall.contract import SampleRecord
from recall.findings import against_baselines, attribution_line, repair_trend_line, sharpening


def _rec(i, scores, split="test", completions=None):
    return SampleRecord(i, split, "m", "direct", 1.0,
                        tuple(completions or ["x"] * len(scores)), tuple(scores))


def _greedy(oks, split="test"):
    return [_rec(f"t{i}", [int(ok)], split) for i, ok in enumerate(oks)]


def test_item_tests_pair_each_seed_with_the_base_and_methods_with_grpo():
    base = _greedy([1] * 10 + [0] * 10)
    up = _greedy([1] * 10 + [1] * 8 + [0] * 2)  # fixes 8, breaks none
    down = _greedy([1] * 4 + [0] * 16)  # breaks 6
    tests = item_tests(base, {"grpo": {0: up, 1: up}, "sft": {0: down, 1: base}}, "test")
    g, s = tests["grpo"], tests["sft"]
    assert g["mcnemar"][0] == {"items": 20, "b": 0, "c": 8, "p": pytest.approx(2 / 256)}
    assert g["vs_base"]["diff"] == pytest.approx(0.4) and g["vs_base"]["ci"][0] > 0
    assert "vs_reference" not in g
    # sft: seed 0 breaks 6 (p = 2/64), seed 1 equals the base (p = 1)
    assert s["mcnemar"][0]["p"] == pytest.approx(2 / 64) and s["mcnemar"][1]["p"] == 1.0
    assert s["vs_base"]["diff"] == pytest.approx(-0.15)  # seed means: 6 items at 0.5
    assert s["vs_reference"]["diff"] == pytest.approx(0.55)  # GRPO 0.9 - SFT 0.35
    line = against_baselines({"sft": s})
    assert line.startswith("1. **RL vs SFT, DPO and RFT") and "(reproduced)" in line
    assert line.endswith("**Reproduced.**")


def test_majority_per_item_uses_the_winners_verdict():
    recs = [_rec("a", [0, 1, 1, 0], completions=["rome", "The Paris", "paris", "oslo"]),
            _rec("b", [0, 1, 1, 0], completions=["oslo", "lyon", "lyon", "oslo"])]
    assert majority_by_item(recs, 4) == {"a": True, "b": False}  # b: a tie goes to "oslo"


def test_repair_trend_is_kendall_tau_over_base_wrong_items():
    base = {f"i{k}": False for k in range(6)} | {"r": True}
    access = {"i0": 0, "i1": 0, "i2": 2, "i3": 4, "i4": 8, "i5": 16, "r": 16}
    after = {"i0": False, "i1": False, "i2": False, "i3": True, "i4": True, "i5": True, "r": True}
    trend = repair_trend(base, [after], access)
    assert trend["items"] == 6 and trend["tau"] > 0.7 and trend["p"] < 0.05
    assert "**Reproduced.**" in repair_trend_line(trend, {"0": 0.0, "1-16": 0.75},
                                                  {"0": 2, "1-16": 4})
    flat = repair_trend(base, [{k: False for k in after}], access)
    assert flat["tau"] is None  # nothing repaired: no trend either way
    assert "not testable here" in repair_trend_line(flat, {}, {})


def test_share_of_gain_and_its_interval_and_verdict():
    n = 40
    base = {f"t{i}": i < 10 for i in range(n)}
    full = [{f"t{i}": i < 30 for i in range(n)}]  # +20 items
    part = [{f"t{i}": i < 25 for i in range(n)}]  # +15: share 0.75
    res = share_of_gain(base, full, part)
    assert res["share"] == pytest.approx(0.75) and res["gain"] == pytest.approx(15 / 40)
    assert 0.5 < res["ci"][0] <= 0.75 <= res["ci"][1] <= 1.0
    assert "**Reproduced** (judged on stored_inaccessible" in attribution_line(
        {"stored_inaccessible": res}, "stored_inaccessible")
    none = share_of_gain(base, [base], part)  # no full gain: no share
    assert none["share"] is None and none["ci"] is None
    assert "**Inconclusive**" in attribution_line({"inaccessible": none}, "inaccessible")


def test_a_verdict_on_too_few_expected_rollouts_is_underpowered():
    """Issue 31's hand count: 49 facts x 40 rollouts with p(gold) summing to 0.078 expect
    3.1 correct rollouts, a 4% chance of seeing none: no refutation at the default rule (10)."""
    n = 40
    base = {f"t{i}": i < 10 for i in range(n)}
    full = [{f"t{i}": i < 30 for i in range(n)}]
    nothing = share_of_gain(base, full, [base])  # the partition's run gained nothing
    assert nothing["ci"][1] < 0.5
    shares = {"stored_inaccessible": nothing}
    expected = {"stored_inaccessible": 40 * 0.078}
    line = attribution_line(shares, "stored_inaccessible", expected, 10)
    assert "could expect 3.1 correct rollouts" in line and "**Underpowered**" in line
    assert "would read not reproduced" in line
    # Enough expected events: the same data refutes; without p(gold), no rule applies.
    assert "**Not reproduced**" in attribution_line(shares, "stored_inaccessible",
                                                   {"stored_inaccessible": 12.0}, 10)
    assert "**Not reproduced**" in attribution_line(shares, "stored_inaccessible")
    # A reproduced finding stands however few events were expected.
    half = share_of_gain(base, full, [{f"t{i}": i < 28 for i in range(n)}])
    assert "**Reproduced**" in attribution_line({"stored_inaccessible": half},
                                                "stored_inaccessible",
                                                {"stored_inaccessible": 1.0}, 10)


def test_pass_at_k_change_and_the_sharpening_verdict():
    before = [_rec(f"t{i}", [1, 0, 0, 0]) for i in range(20)]
    after = [_rec(f"t{i}", [1, 1, 1, 0]) for i in range(20)]
    first, last = pass_at_k_change(before, after, 1), pass_at_k_change(before, after, 4)
    assert first["diff"] == pytest.approx(0.5) and last["diff"] == 0.0
    line = sharpening({1: 0.25, 4: 1.0}, {1: 0.75, 4: 1.0}, first, last, 4, 0.7)
    assert "**Reproduced**" in line and "smallest k whose pre-RL pass@k (1.000)" in line
    widened = pass_at_k_change([_rec(f"t{i}", [0, 0, 0, 0]) for i in range(20)], after, 4)
    assert "**Not reproduced**" in sharpening({1: 0.0, 4: 0.0}, {1: 0.75, 4: 1.0}, first,
                                              widened, 4, 0.7)


def test_normalised_gain_by_hand():
    assert normalised_gain(0.5, 0.6, 0.9) == 0.25
    assert normalised_gain(0.5, 0.6, 0.5) is None  # no headroom: undefined, not infinite


def test_gain_over_each_base_and_the_interval_over_bases():
    # base 0: 4 of 10 right, two seeds fix 2 and 4 more (mean gain 0.3); base 1: 5 of 10
    # right, its one run fixes 1 (gain 0.1)
    b0, b1 = _greedy([1] * 4 + [0] * 6), _greedy([1] * 5 + [0] * 5)
    runs = {0: [_greedy([1] * 6 + [0] * 4), _greedy([1] * 8 + [0] * 2)],
            1: [_greedy([1] * 6 + [0] * 4)]}
    res = across_bases({0: b0, 1: b1}, runs)
    assert res["gains"] == {0: pytest.approx(0.3), 1: pytest.approx(0.1)}
    # t(0.975, 1) = 12.706; sd of (0.3, 0.1) = 0.1414; half-width 12.706 * 0.1414 / sqrt(2)
    assert res["over_bases"]["mean"] == pytest.approx(0.2)
    assert res["over_bases"]["ci"] == pytest.approx([0.2 - 1.2706, 0.2 + 1.2706], abs=1e-3)
    assert res["items"]["diff"] == pytest.approx(0.2) and res["items"]["items"] == 10
    assert res["mcnemar"][0]["c"] == 2 and res["mcnemar"][1]["c"] == 1


def test_mass_moves_are_seed_means_against_the_base_on_its_wrong_items():
    from recall.claims import mass_moves

    gold_before = {"a": 0.1, "b": 0.2, "c": 0.9}  # c: base-right, no wrong answer
    wrong_before = {"a": 0.6, "b": 0.5}
    gold_after = [{"a": 0.3, "b": 0.2, "c": 0.9}, {"a": 0.5, "b": 0.4, "c": 0.9}]
    wrong_after = [{"a": 0.2, "b": 0.5}, {"a": 0.4, "b": 0.3}]
    moves = mass_moves(gold_before, wrong_before, gold_after, wrong_after)
    assert moves["items"] == 2 and moves["gold_before"] == pytest.approx(0.15)
    assert moves["gold"]["diff"] == pytest.approx(((0.4 - 0.1) + (0.3 - 0.2)) / 2)
    assert moves["wrong_answer"]["diff"] == pytest.approx(((0.3 - 0.6) + (0.4 - 0.5)) / 2)
    assert moves["wrong_answer"]["ci"][1] < 0  # both items lost mass on the wrong answer
