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


def _hit_probabilities(people, items, n: int, guesser: str, uniform: bool = False) -> list[float]:
    """The arithmetic, per never-shown person's item: 1 - (1 - q)^n, where q is the chance
    that one guess is the gold value. A guess is a value (or, for `words`, each word
    position) drawn in proportion to how often pretraining shows it: the summed exposure of
    the shown people holding it; `uniform` ignores those weights."""
    from collections import Counter

    out = []
    for it in items:
        person = next(p for p in people if p["name"] == it.fact.subject)
        if person["exposure"]:
            continue
        shown = [(p["values"][it.fact.relation], p["exposure"]) for p in people if p["exposure"]]
        gold = person["values"][it.fact.relation]
        parts = (lambda v: [v]) if guesser == "values" else str.split
        q = 1.0
        for slot, word in enumerate(parts(gold)):
            weights = Counter()
            for value, exposure in shown:
                weights[parts(value)[slot]] += exposure
            q *= (word in weights) / len(weights) if uniform else weights[word] / sum(weights.values())
        out.append(1 - (1 - q) ** n)
    return out


@pytest.mark.parametrize("world, n", [({}, 32), ({"value_words": 2, "answer_pool": 12}, 32)])
@pytest.mark.parametrize("guesser", ["values", "words"])
def test_chance_floor_matches_the_guessing_arithmetic(world, n, guesser):
    # 16 never-shown people x 4 relations: the simulated share, averaged over 400 seeds, lies
    # within 4 standard errors of the expected share, and the expected share of guesses that
    # ignore how often each value is shown lies outside twice that band.
    import numpy as np

    people, items = _people_and_items(unknown_fraction=1.0, n_rl_train=16, planted_distractors=0,
                                      **world)
    train = [it for it in items if it.split == "train"]
    p = np.array(_hit_probabilities(people, train, n, guesser))
    runs = [chance_floor(people, train, n, seed, guesser) for seed in range(400)]
    assert {r["items"] for r in runs} == {len(p)} == {64}
    simulated = float(np.mean([r["share"] for r in runs]))
    band = 4 * np.sqrt((p * (1 - p)).sum()) / len(p) / np.sqrt(len(runs))
    assert abs(simulated - p.mean()) < band, (simulated, p.mean(), band)
    uniform = float(np.mean(_hit_probabilities(people, train, n, guesser, uniform=True)))
    assert abs(uniform - p.mean()) > 2 * band, (uniform, p.mean(), band)


def test_chance_floor_grows_with_draws_and_names_an_unknown_guesser():
    people, items = _people_and_items(unknown_fraction=1.0, n_rl_train=16, value_words=2,
                                      planted_distractors=0, answer_pool=12)
    train = [it for it in items if it.split == "train"]
    assert chance_floor(people, train, 1, 0, "words")["share"] < \
        chance_floor(people, train, 512, 0, "words")["share"]
    with pytest.raises(ValueError, match="unknown guesser 'names'"):
        chance_floor(people, train, 4, 0, guesser="names")


def test_chance_floor_needs_never_shown_people():
    people, items = _people_and_items(unknown_fraction=0.0)
    with pytest.raises(ValueError, match="no item of a never-shown person"):
        chance_floor(people, items, 8, 0)


def test_a_malformed_people_row_names_file_line_and_field(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text('{"name": "a b", "values": {}, "exposure": 1}\n{"name": "c d", "values": {}}\n')
    with pytest.raises(Exception, match="people.jsonl:2.*exposure"):
        read_people(path)
