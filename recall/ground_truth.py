"""What the toy world knows and the model cannot: which facts were stored, and the chance floor.

Every toy QA item belongs to one person whose biography was shown `exposure` times in
pretraining (0: never). `fact_exposures` maps items to that count, so the analyses can split
facts into stored-but-inaccessible and not stored, and the SFT-on-known control can train on
the facts the world stored rather than on the facts the base model happened to sample.

`chance_floor` is the baseline that says how much of accessibility is luck: for people the
model never saw, a guesser that knows everything pretraining shows except the person draws
`n_samples` answers and hits the gold value by chance. Two guessers bound what a model with
no knowledge of the person can do: one draws whole values seen in pretraining (weighted by
how often they were shown), one composes values word by word from the words seen in each
position. Real data has no ground truth: for items of no toy person both return nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Mapping, Sequence

from recall.contract import QAItem, read_jsonl, require_field

GUESSERS = ("values", "words")


def _person(obj: dict, where: str) -> dict:
    require_field(obj, "name", str, where)
    require_field(obj, "values", dict, where)
    require_field(obj, "exposure", int, where)
    return obj


def read_people(path) -> list[dict]:
    """The world's people (data/world/people.jsonl); a malformed row names file and line."""
    return list(read_jsonl(path, _person))


def labels_for(items: Sequence[QAItem], exposures: Mapping[str, int]) -> dict[str, int]:
    """`exposures` restricted to `items`; an item with no world label is an error (real data
    has none: its analyses use accessibility only)."""
    missing = [it.id for it in items if it.id not in exposures]
    if missing:
        raise ValueError(f"{len(missing)} items have no world label (e.g. {missing[0]}): "
                         "ground truth exists for the toy world only; on real data use "
                         "sft_known.known_by accessibility and attribution.ground_truth false")
    return {it.id: exposures[it.id] for it in items}


def stored_items(items: Sequence[QAItem], exposures: Mapping[str, int]) -> list[QAItem]:
    """The items whose facts pretraining showed at least once: the SFT-on-known control's
    data, from ground truth."""
    labels = labels_for(items, exposures)
    return [it for it in items if labels[it.id] >= 1]


def fact_exposures(people: Sequence[Mapping], items: Sequence[QAItem]) -> dict[str, int]:
    """Biography copies behind each toy item, by item id; items of no toy person are left out.

    `people`: rows of data/world/people.jsonl (name, values, exposure). A leak item asks an
    RL-train person's fact and so carries that person's exposure."""
    by_name = {p["name"]: p for p in people}
    out = {}
    for item in items:
        person = by_name.get(item.fact.subject) if item.fact else None
        if person is not None and item.fact.relation in person["values"]:
            out[item.id] = int(person["exposure"])
    return out


def stored_split(exposures: Mapping[str, int], access: Mapping[str, int]) -> dict[str, list[str]]:
    """Item ids by ground truth: stored and sampled (accessible), stored but never sampled
    (inaccessible: what RL could unlock), and not stored (no biography: what no method can
    recall). `access`: correct samples per item; only items in both maps are split."""
    groups: dict[str, list[str]] = {"accessible": [], "stored_inaccessible": [], "not_stored": []}
    for item_id in sorted(set(exposures) & set(access)):
        if exposures[item_id] == 0:
            groups["not_stored"].append(item_id)
        else:
            groups["accessible" if access[item_id] else "stored_inaccessible"].append(item_id)
    return groups


def _weighted(people: Sequence[Mapping], relation: str, guesser: str) -> list[Counter]:
    """Per answer slot (one slot for whole values), how often pretraining shows each choice."""
    if guesser not in GUESSERS:
        raise ValueError(f"unknown guesser {guesser!r}; expected one of {GUESSERS}")
    shown = [(p["values"][relation], p["exposure"]) for p in people
             if p["exposure"] and relation in p["values"]]
    if not shown:
        raise ValueError(f"chance_floor: pretraining shows no value of {relation!r}")
    width = 1 if guesser == "values" else max(len(v.split()) for v, _ in shown)
    slots = [Counter() for _ in range(width)]
    for value, exposure in shown:
        parts = [value] if guesser == "values" else value.split()
        for slot, part in enumerate(parts):
            slots[slot][part] += exposure
    return slots


def chance_floor(people: Sequence[Mapping], items: Sequence[QAItem], n_samples: int,
                 seed: int, guesser: str = "values") -> dict:
    """Share of the never-shown people's items that `n_samples` blind guesses hit at least once.

    Returns {"items": n, "hit": h, "share": h / n, "guesser": guesser}. The guesses for an
    item come from everything pretraining shows of the item's relation; the gold value is
    the person's own. Items of shown people, and of no toy person, are not counted."""
    if n_samples < 1:
        raise ValueError(f"chance_floor needs n_samples >= 1, got {n_samples}")
    by_name = {p["name"]: p for p in people}
    rng = random.Random(f"chance-{seed}-{guesser}")
    slots_by_relation: dict[str, list[Counter]] = {}
    hit = total = 0
    for item in items:
        person = by_name.get(item.fact.subject) if item.fact else None
        if person is None or person["exposure"] or item.fact.relation not in person["values"]:
            continue
        relation = item.fact.relation
        if relation not in slots_by_relation:
            slots_by_relation[relation] = _weighted(people, relation, guesser)
        slots = slots_by_relation[relation]
        draws = [rng.choices(list(s), weights=list(s.values()), k=n_samples) for s in slots]
        guesses = {" ".join(words) for words in zip(*draws)}
        total += 1
        hit += person["values"][relation] in guesses
    if not total:
        raise ValueError("chance_floor: no item of a never-shown person (world.unknown_fraction 0?)")
    return {"items": total, "hit": hit, "share": hit / total, "guesser": guesser}
