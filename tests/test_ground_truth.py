"""Ground truth: which facts were stored, the stored / not-stored split, and the chance floor."""

import dataclasses

import pytest
from conftest import micro_params_dict

from recall.config import params_from_dict
from recall.contract import Fact, QAItem
from recall.ground_truth import (
    chance_floor,
    fact_exposures,
    labels_for,
    read_people,
    stored_items,
    stored_split,
)
from recall.world import generate_world


def _people_and_items(**world):
    data = micro_params_dict()
    data["world"].update(world)
    w = generate_world(params_from_dict(data).world, seed=0)
    return [dataclasses.asdict(p) for p in w.people], list(w.items)


def _item(i, subject, relation="field", split="train"):
    return QAItem(i, "toy", "q ?", ("a",), Fact(subject, relation), split)


def test_exposures_come_from_the_items_person_and_real_items_have_none():
    people = [{"name": "ann lee", "values": {"field": "x"}, "exposure": 3},
              {"name": "bo ray", "values": {"field": "y"}, "exposure": 0}]
    items = [_item("a", "ann lee"), _item("b", "bo ray"), _item("c", "nobody"),
             QAItem("nq-1", "nq_open", "who ?", ("z",), None, "test")]
    exposures = fact_exposures(people, items)
    assert exposures == {"a": 3, "b": 0}
    assert [it.id for it in stored_items(items[:2], exposures)] == ["a"]
    with pytest.raises(ValueError, match="1 items have no world label \\(e.g. nq-1\\)"):
        labels_for(items[:2] + items[3:], exposures)
    assert stored_split({"a": 3, "b": 0, "d": 5, "e": 1}, {"a": 2, "b": 1, "d": 0, "e": 0}) == \
        {"accessible": ["a"], "stored_inaccessible": ["d", "e"], "not_stored": ["b"]}


def test_chance_floor_on_a_tiny_world_matches_the_guessing_arithmetic():
    # one word of 12 per relation, 12 values: a guesser from shown values hits a never-shown
    # person's value in 32 draws most of the time; 2 ordered words of 12 (132 answers) rarely
    people, items = _people_and_items(unknown_fraction=1.0, n_rl_train=16, planted_distractors=0)
    train = [it for it in items if it.split == "train"]
    one = chance_floor(people, train, 32, seed=0, guesser="values")
    assert one["items"] == 64 and one["share"] > 0.6
    people2, items2 = _people_and_items(unknown_fraction=1.0, n_rl_train=16, value_words=2,
                                        planted_distractors=0,
                                        answer_pool=12)
    train2 = [it for it in items2 if it.split == "train"]
    for guesser in ("values", "words"):
        floor = chance_floor(people2, train2, 32, seed=0, guesser=guesser)
        # expected share ~ 1 - (1 - 1/132)^32 = 0.22 for uniform words; values guessers only
        # hit values someone else holds
        assert floor["items"] == 64 and floor["share"] < 0.4, floor
    assert chance_floor(people2, train2, 1, 0, "words")["share"] < \
        chance_floor(people2, train2, 512, 0, "words")["share"]
    with pytest.raises(ValueError, match="unknown guesser 'names'"):
        chance_floor(people2, train2, 4, 0, guesser="names")


def test_chance_floor_needs_never_shown_people():
    people, items = _people_and_items(unknown_fraction=0.0)
    with pytest.raises(ValueError, match="no item of a never-shown person"):
        chance_floor(people, items, 8, 0)


def test_a_malformed_people_row_names_file_line_and_field(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text('{"name": "a b", "values": {}, "exposure": 1}\n{"name": "c d", "values": {}}\n')
    with pytest.raises(Exception, match="people.jsonl:2.*exposure"):
        read_people(path)
