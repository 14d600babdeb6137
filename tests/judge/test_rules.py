from recall.judge.interface import JudgeRequest, reward_function
from recall.judge.rules import RuleJudge, normalize_answer


def _score(golds, candidate):
    return RuleJudge().judge([JudgeRequest("q", tuple(golds), candidate)])[0].value


def test_normalisation_squad_style():
    assert normalize_answer("  The Zantrix  Corp. ") == "zantrix corp"
    assert normalize_answer("An Apple!") == "apple"


def test_rule_judge_accepts_any_alias_and_rejects_partial():
    golds = ["zantrix corp", "zantrix", "zantrix corporation"]
    assert _score(golds, "Zantrix Corporation") == 1
    assert _score(golds, " zantrix .") == 1
    assert _score(golds, "zantrix corp inc") == 0
    assert _score(golds, "") == 0
    assert _score(["the"], "the") == 0  # normalises to empty: never a match


def test_reward_function_is_the_judge():
    f = reward_function(RuleJudge())
    rewards = f(prompts=["p"] * 3, completions=["paris", "rome", "Paris."],
                question=["q"] * 3, answers=[["paris"]] * 3)
    assert rewards == [1.0, 0.0, 1.0]


def test_core_words_are_what_every_alias_shares():
    from recall.judge.rules import core_words, lacks_core_words

    gold = ("Brak Tolis Corp", "brak tolis", "brak tolis corporation")
    assert core_words(gold) == {"brak", "tolis"}
    assert lacks_core_words(gold, "tolis corp") and lacks_core_words(gold, "drin tolis")
    assert not lacks_core_words(gold, "The brak tolis company.")
    # aliases with no word in common (real data: "JFK" / "John F. Kennedy") gate nothing
    assert core_words(("jfk", "john f kennedy")) == set()
    assert not lacks_core_words(("jfk", "john f kennedy"), "kennedy")
