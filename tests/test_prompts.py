"""Answer extraction per prompt style, on hand-written completions."""

import pytest

from recall.prompts import COT, DIRECT, cot_answer


@pytest.mark.parametrize("text, answer", [
    ("The capital is known.\nanswer : Paris", "Paris"),
    # the LAST marker wins: reasoning may use the word before the final line
    ("The answer: maybe Lyon? No.\nAnswer: Paris\n", "Paris"),
    ("... so ANSWER :  Paris  \nExtra text after the answer line", "Paris"),
    ("step 1. step 2. answer:Paris", "Paris"),
    ("I think it is Paris.", ""),  # no marker: no final answer, never a guess
    ("answer :\n", ""),  # a marker with nothing after it on its line
])
def test_cot_answer_takes_the_line_after_the_last_marker(text, answer):
    assert cot_answer(text) == answer


def test_each_style_extracts_its_own_answer():
    completion = "velmor\nquestion : where ? answer : zantrix"
    assert DIRECT.answer(completion) == "velmor"  # a direct answer ends at its first line
    assert COT.answer(completion) == "zantrix"
    assert COT.render("where was x born ?").startswith("question : where was x born ?\n")
    assert '"answer :"' in COT.render("q")  # the prompt asks for the marker it parses
