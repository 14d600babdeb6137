import dataclasses

import pytest
from conftest import micro_params_dict

from recall.analysis import accessibility_histogram, compare, correct_counts, pass_at_k_table, write_plots
from recall.config import params_from_dict
from recall.contract import SampleRecord


def _rec(i, split, scores):
    return SampleRecord(i, split, "m", "direct", 1.0, tuple("x" for _ in scores), tuple(scores))


def _cfg():
    # pass@k to 8: the records below hold 8 samples per item
    return dataclasses.replace(params_from_dict(micro_params_dict()).analyze, pass_k=(1, 2, 4, 8))


@pytest.fixture
def records():
    base_greedy = [_rec("t1", "test", [0]), _rec("t2", "test", [0]), _rec("t3", "test", [1]),
                   _rec("t4", "test", [0])]
    after_greedy = [_rec("t1", "test", [1]), _rec("t2", "test", [0]), _rec("t3", "test", [1]),
                    _rec("t4", "test", [1])]
    base_samples = [_rec("t1", "test", [1, 0, 0, 0, 0, 0, 0, 0]),  # accessibility 1
                    _rec("t2", "test", [0] * 8),                   # 0
                    _rec("t3", "test", [1] * 8),                   # 8
                    _rec("t4", "test", [1, 1, 1, 0, 0, 0, 0, 0]),  # 3
                    _rec("r1", "train", [0] * 8)]
    after_samples = [_rec("t1", "test", [1] * 8), _rec("t2", "test", [0] * 8),
                     _rec("t3", "test", [1] * 8), _rec("t4", "test", [1] * 4 + [0] * 4),
                     _rec("r1", "train", [1] + [0] * 7)]
    return base_greedy, base_samples, after_greedy, after_samples


def test_compare_hand_computed(records):
    cfg = _cfg()
    result = compare(*records, cfg, 8)
    assert result["accuracy"]["base"]["test"] == 0.25
    assert result["accuracy"]["after"]["test"] == 0.75
    assert result["accuracy"]["gain_rel"] == pytest.approx(2.0)
    assert result["repair"]["1"] == {"wrong": 1, "repaired": 1, "rate": 1.0}
    assert result["repair"]["0"] == {"wrong": 1, "repaired": 0, "rate": 0.0}
    assert result["repair"]["3-4"] == {"wrong": 1, "repaired": 1, "rate": 1.0}
    assert result["repair"]["5-8"]["rate"] is None
    # pass@1 = mean share correct: base (1/8 + 0 + 1 + 3/8)/4
    assert result["pass_at_k"]["base"][1] == pytest.approx((1 / 8 + 0 + 1 + 3 / 8) / 4)
    assert result["pass_at_k"]["after"][8] == pytest.approx(0.75)
    assert accessibility_histogram(records[1], "test", cfg.bin_edges) == \
        {"0": 1, "1": 1, "2": 0, "3-4": 1, "5-8": 1}


def test_compare_refuses_mismatched_items(records):
    cfg = _cfg()
    base_greedy, base_samples, after_greedy, after_samples = records
    with pytest.raises(ValueError, match="different test items"):
        compare(base_greedy, base_samples, after_greedy[:2], after_samples, cfg, 8)


def test_plots_are_written(records, tmp_path):
    cfg = _cfg()
    result = compare(*records, cfg, 8)
    pngs = write_plots(result, "grpo", tmp_path)
    assert sorted(p.name for p in pngs) == ["accessibility.png", "pass_at_k.png", "repair_rate.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)
    assert (tmp_path / "pass_at_k.csv").read_text().splitlines()[0] == "k,base,grpo"


def test_a_k_above_the_sample_count_raises_naming_item_and_count(records):
    base_samples = records[1]
    assert pass_at_k_table(base_samples, "test", [8])[8] == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"pass@k for k=\[16, 32\] needs at least 32 samples "
                                         r"per item; test item t1 has 8"):
        pass_at_k_table(base_samples, "test", [1, 16, 32])


def test_accessibility_counts_the_first_n_samples_of_a_longer_draw(records):
    base_samples = records[1]  # 8 samples each; accessibility over the first 4
    assert correct_counts(base_samples, "test", 4) == {"t1": 1, "t2": 0, "t3": 4, "t4": 3}
    assert correct_counts(base_samples, "test") == {"t1": 1, "t2": 0, "t3": 8, "t4": 3}
    with pytest.raises(ValueError, match="first 16 samples, but 4 test items have fewer, "
                                         "e.g. t1 with 8"):
        correct_counts(base_samples, "test", 16)
    # compare's accessibility uses the limit: t3 (base-right) leaves bin 5-8 for 3-4
    result = compare(*records, _cfg(), 4)
    assert result["accessibility"]["test"] == {"0": 1, "1": 1, "2": 0, "3-4": 2, "5-8": 0}
