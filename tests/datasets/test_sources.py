"""Loaders of every format on real files (shared/data) and schema fixtures; bad rows named."""

import json
from pathlib import Path

import pytest
from conftest import SHARED, needs_shared

from recall.config import SourceConfig
from recall.contract import ContractError, Fact
from recall.datasets import load_source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def _src(fmt, path, **kw):
    return SourceConfig(name=kw.pop("name", "s"), format=fmt, role=kw.pop("role", "test"),
                        path=str(path), **kw)


@needs_shared
def test_nq_open_dev_and_efficientqa():
    dev = load_source(_src("nq_open", SHARED / "nq_open/NQ-open.dev.jsonl"))
    eqa = load_source(_src("nq_open", SHARED / "nq_open/NQ-open.efficientqa.dev.1.1.jsonl"))
    assert (len(dev), len(eqa)) == (3610, 1800)  # SOURCES.md row counts
    assert dev[0].question == "when was the last time anyone was on the moon"
    assert dev[0].answers == ("14 December 1972 UTC", "December 1972") and dev[0].fact is None
    assert dev[17].native_id == "00017"


@needs_shared
def test_simpleqa_csv_with_embedded_newlines():
    rows = load_source(_src("simpleqa", SHARED / "simpleqa/simple_qa_test_set.csv"))
    assert len(rows) == 4326
    assert rows[0].question == "Who received the IEEE Frank Rosenblatt Award in 2010?"
    assert rows[0].answers == ("Michio Sugeno",)


def test_simpleqa_original_header(tmp_path):
    path = tmp_path / "simpleqa.csv"
    path.write_text('metadata,problem,answer\n"{\'topic\': \'Art\'}","Who painted it,\nreally?",'
                    'Jan\n"{}",Second?,Two\n')
    rows = load_source(_src("simpleqa", path))
    assert [(r.question, r.answers) for r in rows] == [("Who painted it,\nreally?", ("Jan",)),
                                                       ("Second?", ("Two",))]


def test_triviaqa_fixture_value_then_aliases():
    rows = load_source(_src("triviaqa", FIXTURES / "triviaqa.jsonl"))
    assert len(rows) == 6 and rows[0].native_id == "tc_33"
    assert rows[0].answers == ("Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard",
                               "Sunset Blvd.")


def test_popqa_fixture_fills_fact():
    rows = load_source(_src("popqa", FIXTURES / "popqa.tsv"))
    assert len(rows) == 6
    assert rows[0].fact == Fact(subject="George Rankin", relation="occupation")
    assert rows[0].answers == ("politician", "political leader", "political figure")


@pytest.mark.parametrize("fmt, line, field", [
    ("nq_open", '{"question": "q", "answer": "not a list"}', "answer"),
    ("nq_open", '{"answer": ["a"]}', "question"),
    ("triviaqa", '{"question": "q", "question_id": "x", "answer": {"value": "v"}}', "aliases"),
    ("triviaqa", '{"question": "q", "question_id": "x", "answer": {"value": "", "aliases": []}}',
     "value"),
])
def test_malformed_jsonl_row_names_file_line_field(tmp_path, fmt, line, field):
    path = tmp_path / "bad.jsonl"
    good = {"nq_open": '{"question": "ok", "answer": ["a"]}',
            "triviaqa": json.dumps({"question": "ok", "question_id": "y",
                                    "answer": {"value": "v", "aliases": ["w"]}})}[fmt]
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ContractError, match=rf"bad.jsonl:2.*'{field}"):
        load_source(_src(fmt, path))


def test_malformed_popqa_row_names_line_and_field(tmp_path):
    lines = (FIXTURES / "popqa.tsv").read_text().splitlines()
    cells = lines[3].split("\t")
    cells[-1] = "politician"  # not a JSON list
    path = tmp_path / "popqa.tsv"
    path.write_text("\n".join(lines[:3] + ["\t".join(cells)]) + "\n")
    with pytest.raises(ContractError, match=r"popqa.tsv:4: field 'possible_answers' must be a JSON"):
        load_source(_src("popqa", path))


def test_missing_column_fails_on_header(tmp_path):
    path = tmp_path / "popqa.tsv"
    path.write_text("id\tsubj\tquestion\n1\ts\tq?\n")
    with pytest.raises(ContractError, match=r"popqa.tsv:1: header lacks column\(s\) \['prop', "
                                            r"'possible_answers'\]"):
        load_source(_src("popqa", path))


def test_exact_repeat_is_one_item_a_conflicting_repeat_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    row = {"question": "q", "question_id": "same", "answer": {"value": "v", "aliases": []}}
    other = {"question": "q2", "question_id": "x", "answer": {"value": "w", "aliases": []}}
    # TriviaQA rc: one row per evidence document, so a question repeats verbatim.
    path.write_text("\n".join(json.dumps(r) for r in (row, other, row)) + "\n")
    assert [it.native_id for it in load_source(_src("triviaqa", path))] == ["same", "x"]
    path.write_text(json.dumps(row) + "\n" + json.dumps({**row, "question": "q?"}) + "\n")
    with pytest.raises(ContractError, match=r"t.jsonl:2: id 'same' repeats the one at \S*t.jsonl:1 "
                                            "with other content"):
        load_source(_src("triviaqa", path))


def test_no_file_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ContractError, match="'s': file .*missing.jsonl' does not exist and no "
                                            "hub_id"):
        load_source(_src("nq_open", tmp_path / "missing.jsonl"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ContractError, match="Hub dataset 'google-research-datasets/nq_open'"):
        load_source(_src("nq_open", tmp_path / "missing.jsonl",
                         hub_id="google-research-datasets/nq_open", hub_split="validation"))


def test_origin_names_the_file_and_its_digest(tmp_path):
    from recall.datasets import source_origin

    path = tmp_path / "a.jsonl"
    path.write_text('{"question": "q", "answer": ["a"]}\n')
    first = source_origin(_src("nq_open", path))
    path.write_text('{"question": "q2", "answer": ["a"]}\n')
    assert first.startswith(f"{path} sha256:") and source_origin(_src("nq_open", path)) != first
    assert source_origin(_src("nq_open", tmp_path / "none", hub_id="x/y", hub_split="train")) \
        == "hub:x/y//train"
