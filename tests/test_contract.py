import json

import pytest

from recall.contract import ContractError, Fact, QAItem, read_items, read_records, write_jsonl

GOOD = {"id": "x-1", "dataset": "toy", "question": "where ?", "answers": ["a"],
        "fact": {"subject": "s", "relation": "r"}, "split": "test"}


def _write(tmp_path, rows):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_round_trip(tmp_path):
    item = QAItem("x-1", "toy", "where ?", ("a", "b"), Fact("s", "r"), "test")
    write_jsonl(tmp_path / "i.jsonl", [item])
    assert read_items(tmp_path / "i.jsonl") == [item]


@pytest.mark.parametrize("bad,message", [
    ({"answers": []}, "field 'answers' must be a non-empty list"),
    ({"answers": "paris"}, "field 'answers' must be list"),
    ({"answers": ["ok", ""]}, r"field 'answers\[1\]' must be a non-empty string"),
    ({"split": "dev"}, "field 'split' must be one of"),
    ({"question": "  "}, "field 'question' is empty"),
    ({"fact": "paris"}, "field 'fact' must be an object or null"),
])
def test_malformed_line_names_file_line_and_field(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, {**GOOD, **bad}])
    with pytest.raises(ContractError, match=message) as err:
        read_items(path)
    assert f"{path}:2" in str(err.value)


def test_missing_field_and_bad_json(tmp_path):
    row = dict(GOOD)
    del row["fact"]
    with pytest.raises(ContractError, match=r":1: missing field 'fact'"):
        read_items(_write(tmp_path, [row]))
    with pytest.raises(ContractError, match=r":2: not valid JSON"):
        read_items(_write(tmp_path, [GOOD, "{oops"]))


def test_record_scores_must_match_completions(tmp_path):
    rec = {"id": "x", "split": "test", "model": "m", "prompt_style": "direct", "temperature": 1.0,
           "completions": ["a", "b"], "scores": [1]}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(ContractError, match=r"r.jsonl:1: field 'scores' must hold one 0/1"):
        read_records(path)
