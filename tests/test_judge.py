from recall.judge import RuleJudge, normalize_answer, reward_function


def test_normalisation_squad_style():
    assert normalize_answer("  The Zantrix  Corp. ") == "zantrix corp"
    assert normalize_answer("An Apple!") == "apple"


def test_rule_judge_accepts_any_alias_and_rejects_partial():
    judge = RuleJudge()
    golds = ["zantrix corp", "zantrix", "zantrix corporation"]
    assert judge.score("q", golds, "Zantrix Corporation") == 1
    assert judge.score("q", golds, " zantrix .") == 1
    assert judge.score("q", golds, "zantrix corp inc") == 0
    assert judge.score("q", golds, "") == 0
    assert judge.score("q", ["the"], "the") == 0  # normalises to empty: never a match


def test_score_many_matches_score():
    judge = RuleJudge()
    cands = ["x", "y", "x", "z"]
    assert judge.score_many("q", ["x"], cands) == [1, 0, 1, 0]


def test_reward_function_is_the_judge():
    f = reward_function(RuleJudge())
    rewards = f(prompts=["p"] * 3, completions=["paris", "rome", "Paris."],
                question=["q"] * 3, answers=[["paris"]] * 3)
    assert rewards == [1.0, 0.0, 1.0]
