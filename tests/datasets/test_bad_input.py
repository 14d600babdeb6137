"""Every class of bad input file, in every loader: the message names the file, the line and
what was expected; a BOM is accepted and changes nothing."""

import json

import pytest

from recall.config import SourceConfig
from recall.contract import ContractError, read_items
from recall.datasets import load_source

ITEM = {"id": "x-1", "dataset": "toy", "question": "where?", "answers": ["a"], "fact": None,
        "split": "test"}
CSV = ('metadata,question,true_answer\n"{}","Who painted A?",Jan\n"{}","Who painted B, '
       'then?",Piet\n"{}","Who painted C?",Kees\n')


def _src(fmt, path):
    return SourceConfig(name="s", format=fmt, role="test", path=str(path))


def _nq(*questions):
    return "".join(json.dumps({"question": q, "answer": ["x"]}, ensure_ascii=False) + "\n"
                   for q in questions)


def _trivia(*ids):
    return "".join(json.dumps({"question": f"q {i}?", "question_id": i,
                               "answer": {"value": "v", "aliases": []}}) + "\n" for i in ids)


# One text per loader: the contract reader and each dataset format.
TEXTS = {"items": json.dumps(ITEM) + "\n" + json.dumps({**ITEM, "id": "x-2", "question": "Café?"},
                                                       ensure_ascii=False),
         "nq_open": _nq("first?", "café au lait?"),
         "triviaqa": _trivia("a") + json.dumps({"question": "Café?", "question_id": "b",
                                                "answer": {"value": "v", "aliases": []}}, ensure_ascii=False),
         "simpleqa": 'metadata,question,true_answer\n"{}",First?,One\n"{}",Café?,Two\n',
         "popqa": "id\tsubj\tprop\tquestion\tpossible_answers\n"
         + "1\tA\tocc\tWhat is A's job?\t[\"x\"]\n2\tCafé\tocc\tWhat is Café's job?\t[\"y\"]\n"}
SUFFIX = {"items": "jsonl", "nq_open": "jsonl", "triviaqa": "jsonl", "simpleqa": "csv",
          "popqa": "tsv"}


def _load(kind, path):
    return read_items(path) if kind == "items" else load_source(_src(kind, path))


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_latin1_names_file_line_and_byte(tmp_path, kind):
    path = tmp_path / f"latin.{SUFFIX[kind]}"
    path.write_bytes(TEXTS[kind].encode("latin-1"))
    with pytest.raises(ContractError) as err:
        _load(kind, path)
    line = 1 + TEXTS[kind].split("afé")[0].count("\n")
    assert f"{path}:{line}: not UTF-8: byte 0xe9 at column" in str(err.value)
    assert "expected UTF-8" in str(err.value)


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_utf16_is_named(tmp_path, kind):
    path = tmp_path / f"wide.{SUFFIX[kind]}"
    path.write_bytes(TEXTS[kind].encode("utf-16"))
    with pytest.raises(ContractError, match=rf"{path}:1: the file is UTF-16 .*expected UTF-8"):
        _load(kind, path)


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_bom_loads_identically(tmp_path, kind):
    plain, bom = tmp_path / f"plain.{SUFFIX[kind]}", tmp_path / f"bom.{SUFFIX[kind]}"
    plain.write_text(TEXTS[kind], encoding="utf-8")
    bom.write_text(TEXTS[kind], encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert _load(kind, bom) == _load(kind, plain) and len(_load(kind, plain)) == 2


@pytest.mark.parametrize("kind, text", [("items", ""), ("nq_open", "\n\n"), ("triviaqa", ""),
                                        ("simpleqa", "metadata,question,true_answer\n"),
                                        ("popqa", TEXTS["popqa"].splitlines()[0] + "\n")])
def test_empty_source_is_an_error(tmp_path, kind, text):
    path = tmp_path / f"empty.{SUFFIX[kind]}"
    path.write_text(text)
    with pytest.raises(ContractError, match=rf"{path}:? .*(holds no items|holds no rows)"):
        _load(kind, path)


def test_duplicate_ids_name_both_lines(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({**ITEM, "question": q}) + "\n" for q in ("a?", "b?")))
    with pytest.raises(ContractError, match=rf"{items}:2: id 'x-1' repeats the one at {items}:1"):
        read_items(items)
    popqa = tmp_path / "popqa.tsv"
    popqa.write_text(TEXTS["popqa"].splitlines()[0] + "\n" + "7\tA\tocc\tA's job?\t[\"x\"]\n"
                     "8\tB\tocc\tB's job?\t[\"y\"]\n7\tC\tocc\tC's job?\t[\"z\"]\n")
    with pytest.raises(ContractError, match=rf"{popqa}:4: id '7' repeats the one at {popqa}:2"):
        load_source(_src("popqa", popqa))
    trivia = tmp_path / "t.jsonl"
    trivia.write_text(_trivia("a", "b") + json.dumps({"question": "other?", "question_id": "a",
                                                      "answer": {"value": "v", "aliases": []}}))
    with pytest.raises(ContractError, match=rf"{trivia}:3: id 'a' repeats the one at {trivia}:1 "
                                            "with other content"):
        load_source(_src("triviaqa", trivia))


@pytest.mark.parametrize("field, value", [("id", ""), ("dataset", " "), ("fact", {"subject": "",
                                                                                   "relation": "r"}),
                                          ("fact", {"subject": "s", "relation": "\t"})])
def test_empty_required_strings(tmp_path, field, value):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(ITEM) + "\n" + json.dumps({**ITEM, "id": "x-2", field: value}))
    expected = {"id": "'id'", "dataset": "'dataset'"}.get(field) or (
        "'subject'" if not value["subject"] else "'relation'")
    with pytest.raises(ContractError, match=rf"{path}:2.* field {expected} is empty; expected a "
                                            "non-empty string"):
        read_items(path)
    popqa = tmp_path / "popqa.tsv"
    popqa.write_text(TEXTS["popqa"].splitlines()[0] + "\n" + "\tA\tocc\tA's job?\t[\"x\"]\n")
    with pytest.raises(ContractError, match=rf"{popqa}:2: field 'id' must be a non-empty string"):
        load_source(_src("popqa", popqa))


def test_unquoted_comma_names_the_row(tmp_path):
    path = tmp_path / "simpleqa.csv"
    path.write_text(CSV.replace('"Who painted B, then?"', "Who painted B, then?"))
    with pytest.raises(ContractError, match=rf"{path}:3: 4 field\(s\), expected 3 as in the header "
                                            r"\['metadata', 'question', 'true_answer'\]; an "
                                            "unquoted comma"):
        load_source(_src("simpleqa", path))
    tsv = tmp_path / "popqa.tsv"
    tsv.write_text(TEXTS["popqa"].replace("What is A's job?", "What is\tA's job?"))
    with pytest.raises(ContractError, match=rf"{tsv}:2: 6 field\(s\), expected 5 .*unquoted tab"):
        load_source(_src("popqa", tsv))


def test_quote_left_open_mid_file_names_the_row(tmp_path):
    path = tmp_path / "simpleqa.csv"
    path.write_text(CSV.replace('"Who painted B, then?"', '"Who painted B, then?'))
    with pytest.raises(ContractError, match=rf"{path}:3: the row starting here is not valid CSV: "
                                            ".*a quote left open"):
        load_source(_src("simpleqa", path))
    # Open to the end of the file: one runaway row, caught by its field count.
    path.write_text(CSV.replace('"Who painted C?",Kees', '"Who painted C?,Kees'))
    with pytest.raises(ContractError, match=rf"{path}:4: .*a quote left open"):
        load_source(_src("simpleqa", path))
