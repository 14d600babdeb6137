import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from recall.pretraining import EOS, build_tokenizer, corpus_documents, pack
from recall.prompts import DIRECT


def test_tokenizer_is_word_level_and_round_trips():
    tok = build_tokenizer(["kora vex was born in tibra city ."])
    ids = tok("kora vex was born in tibra city .", add_special_tokens=False)["input_ids"]
    assert len(ids) == 8
    assert tok.decode(ids) == "kora vex was born in tibra city ."
    assert tok.convert_ids_to_tokens(tok("unseenword")["input_ids"]) == ["[UNK]"]
    prompt = DIRECT.render("kora vex")  # the template's own words are always in the vocabulary
    assert tok.unk_token_id not in tok(prompt)["input_ids"]


def test_pack_ends_documents_with_eos():
    tok = build_tokenizer(["a b c", "d e"])
    blocks = pack(tok, ["a b c", "d e", "a b c"], block_size=4)
    eos = tok.convert_tokens_to_ids(EOS)
    assert blocks.shape == (2, 4)  # 4 + 3 + 4 = 11 tokens -> two full blocks
    assert blocks[0, 3].item() == eos
    with pytest.raises(ValueError, match="block_size"):
        pack(tok, ["a"], block_size=64)


def test_corpus_holds_instruction_qa_only(tiny_model):
    _, world, params = tiny_model
    instruct = [i for i in world.items if i.split == "instruct"]
    docs = corpus_documents(world.biographies, instruct, qa_repeats=2, seed=0)
    qa_docs = [d for d in docs if d.startswith("question :")]
    assert len(qa_docs) == 2 * len(instruct)
    test_questions = {i.question for i in world.items if i.split != "instruct"}
    assert not any(q in d for d in qa_docs for q in test_questions)


def test_saved_model_is_a_standard_hf_directory(tiny_model):
    model_dir, _, params = tiny_model
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.n_layer == params.pretrain.n_layer
    assert model.config.eos_token_id == tok.eos_token_id
    assert (model_dir / "tokenizer.json").exists() and (model_dir / "model.safetensors").exists()
