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


def test_latent_sections_show_the_tables_or_say_why_not():
    from recall.latent import exposure_table, latent_evidence

    exposures = {"a": 0, "b": 0, "c": 5, "d": 20}
    before = {"a": 1e-6, "b": 2e-6, "c": 3e-3, "d": 0.7}
    after = {"a": 1e-6, "b": 2e-6, "c": 0.2, "d": 0.9}
    latent = latent_evidence(before, after, exposures, ["a", "b", "c", "d"], 0.95)
    assert latent["after"] == exposure_table(after, exposures)
    table = {**TABLE, "grpo": {"pass_at_k": {1: 0.5, 2: 0.6}}}
    moves = {"grpo": {"items": 2, "gold_before": 0.001, "wrong_before": 0.4,
                      "gold": {"diff": 0.1, "ci": [0.05, 0.15], "p": 0.001},
                      "wrong_answer": {"diff": -0.2, "ci": [-0.3, -0.1], "p": 0.0002}}}
    exact = {"base": {1: 0.25, 2: 0.35}, "grpo": {1: 0.45, 2: 0.5}}
    text = study_markdown(table, {"majority": {"nq": 0.5, "simpleqa": 0.2}, "cot": None,
                                  "cot_no_answer": None}, None, [], None, [],
                          evidence={"latent": latent, "mass_moves": moves,
                                    "exact_pass_at_k": exact})
    assert "| 4-10 | 0 | 0 | 0 | 1 | 0 | 0 | 0 |" in text  # c before GRPO: 1e-3 to 1/128
    assert "| 4-10 | 0 | 1 | 0 | 0 | 0 | 0 | 0 |" in text  # c after: 0.1 to 0.5
    assert "| GRPO | 2 | 0.0010 | +0.1000 [+0.0500, +0.1500], p=0.001 |" in text
    assert "| base | 0.250 (0.300) | 0.350 (0.400) |" in text
    assert "| GRPO | 0.450 (0.500) | 0.500 (0.600) |" in text
    off = _report(None)
    assert "Not measured: `latent.run` is off" in off
