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


# --- chat templates: the tokenizer decides, never the profile -------------------------------

@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory):
    from recall.micro_model import build_tokenizer

    return build_tokenizer(["who wrote hamlet", "william shakespeare"] * 20, vocab_size=300)


def test_chat_model_gets_its_template_and_the_toy_the_raw_format(chat_tokenizer):
    from recall.prompts import DIRECT, has_chat_template

    assert has_chat_template(chat_tokenizer)
    text = DIRECT.render("who wrote hamlet", chat_tokenizer)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "Question: who wrote hamlet<|im_end|>" in text and "no explanation" in text
    assert DIRECT.render("who wrote hamlet") == "question : who wrote hamlet answer :"
    # TRL's conversational format for chat models; TRL renders it with the same template.
    assert DIRECT.training_prompt("q", chat_tokenizer) == [
        {"role": "user", "content": DIRECT.chat.format(question="q")}]
    assert chat_tokenizer.apply_chat_template(DIRECT.training_prompt("q", chat_tokenizer),
                                              tokenize=False, add_generation_prompt=True) \
        == DIRECT.render("q", chat_tokenizer)


def test_training_completion_is_an_assistant_turn_for_chat(chat_tokenizer):
    from recall.baselines import training_completion

    assert training_completion(" Paris ", chat_tokenizer) == [
        {"role": "assistant", "content": "Paris"}]

    class Toy:
        chat_template = None
        eos_token = "[EOS]"

    assert training_completion("paris", Toy()) == " paris [EOS]"


def test_reward_grades_the_extracted_answer_of_conversational_completions():
    from recall.judge.interface import reward_function
    from recall.judge.rules import RuleJudge

    f = reward_function(RuleJudge())
    chat = [[{"role": "assistant", "content": "Paris\nIt is the capital."}],
            [{"role": "assistant", "content": "Rome"}]]
    # One extractor for reward and evaluation: the first line, as evaluation grades it.
    assert f(prompts=["q", "q"], completions=chat, question=["q", "q"],
             answers=[["paris"], ["paris"]]) == [1.0, 0.0]


def test_transformers_engine_sets_a_missing_pad_token(tmp_path):
    from recall.engines import load_tokenizer
    from recall.micro_model import build_tokenizer

    tok = build_tokenizer(["a b c"] * 10, vocab_size=280)
    tok.pad_token = None  # as Llama-3.1 ships
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"
    assert loaded.padding_side == "left"
