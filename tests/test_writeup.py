"""The report's markdown: the test-time baseline rows of Table 1 and their notes."""

from recall.writeup import study_markdown

TABLE = {"datasets": ["nq", "simpleqa"], "base": {"nq": 0.5, "simpleqa": 0.25},
         "base_train_accuracy": 0.4, "majority_k": 32, "base_pass_at_k": {1: 0.3, 2: 0.4},
         "wrong_per_bin": {"0": 3, "1": 1}}


def _report(cot, no_answer=None):
    baselines = {"majority": {"nq": 0.55, "simpleqa": 0.2}, "cot": cot,
                 "cot_no_answer": no_answer}
    return study_markdown(TABLE, baselines, None, ["1. a finding"], None, [])


def test_test_time_baselines_get_a_value_and_gain_per_dataset():
    text = _report({"nq": 0.6, "simpleqa": 0.25}, no_answer=0.125)
    assert ("| majority vote @32 (base) | - | 0.550 | +0.050 | +10.0% | 0.200 | -0.050 | -20.0% "
            "| - | - | - |") in text
    assert "| chain-of-thought (base) | - | 0.600 | +0.100 | +20.0% | 0.250 | +0.000 | +0.0% |" in text
    assert "prompt cot/v3" in text and "12.5% of completions gave none" in text


def test_chain_of_thought_not_run_is_n_a_with_the_reason():
    text = _report(None)
    assert "| chain-of-thought (base) | - | n/a | - | - | n/a | - | - | - | - | - |" in text
    assert "has never seen reasoning text" in text and "cot.run: false" in text
