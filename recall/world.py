"""The toy fact world: a model organism of parametric knowledge with known ground truth.

People with unique names hold one value per relation. Biographies state those facts in
paraphrased, shuffled sentences, repeated a long-tailed number of times per person, so the
strength of each fact in the pretrained weights varies. QA items follow the data contract.
Groups of people are disjoint: `instruct` (QA shown in pretraining, to teach the answer
format), `train` (RL-train), `val` and `test` (facts seen only in biographies). A fraction of
RL-train people get no biography at all: their facts cannot be known, as in real QA sets.

Answers either come from a fixed list of `values_per_relation` values (one word, or
`value_words` words with the last word as an alias), or, with `answer_pool` > 0, each
person's value is a fresh ordered draw of `value_words` words from a pool of `answer_pool`
words per relation. The pooled space is what makes accessibility mean knowledge: with 100
one-word values a blind guesser hits at least once in 128 samples 72% of the time, with
2 words from a pool of 80 (6,320 answers) about 2% (`recall.chance` measures it). A pooled
answer has no last-word alias: its last word is one of only `answer_pool`, a guess.

Dedup is scored against planted ground truth: leaks are test questions that paraphrase an
RL-train fact; distractors are test people given an RL-train person's answer while sharing
one of their names (same answer, different subject: not a leak). Planting draws from its own
random stream, so the rest of the world does not move when the counts change.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, replace

from recall.config import WorldConfig
from recall.contract import Fact, QAItem

# Each relation: how a value word is named (canonical first, then aliases), how it is asked,
# and the paraphrases a biography uses. Aliases make exact-string reward too strict on purpose.
RELATIONS: dict[str, dict] = {
    "birth_city": {
        "forms": ("{w}", "{w} city"),
        "question": "where was {name} born ?",
        "paraphrases": ("in which city was {name} born ?", "what is the birthplace of {name} ?"),
        "bio": ("{name} was born in {v} .", "{name} 's birthplace is {v} .",
                "the birthplace of {name} is {v} .", "{name} came into the world in {v} ."),
    },
    "employer": {
        "forms": ("{w} corp", "{w}", "{w} corporation"),
        "question": "which company does {name} work for ?",
        "paraphrases": ("who is the employer of {name} ?", "{name} is employed by which company ?"),
        "bio": ("{name} works for {v} .", "{name} is employed by {v} .",
                "the employer of {name} is {v} .", "{name} has a job at {v} ."),
    },
    "university": {
        "forms": ("{w} university", "university of {w}", "{w}"),
        "question": "which university did {name} attend ?",
        "paraphrases": ("where did {name} study ?", "{name} graduated from which university ?"),
        "bio": ("{name} studied at {v} .", "{name} graduated from {v} .",
                "{name} is an alumnus of {v} .", "{name} earned a degree at {v} ."),
    },
    "field": {
        "forms": ("{w}", "{w} studies"),
        "question": "what field does {name} work in ?",
        "paraphrases": ("what is the field of {name} ?", "{name} specializes in which field ?"),
        "bio": ("{name} works in the field of {v} .", "{name} specializes in {v} .",
                "the field of {name} is {v} .", "{name} is an expert in {v} ."),
    },
}

_ONSETS = "b c d f g h k l m n p r s t v z br dr gr kl pr st tr".split()
_VOWELS = "a e i o u ai ea io".split()
_CODAS = ["", "", "n", "r", "l", "s", "x", "th"]


@dataclass(frozen=True)
class Person:
    index: int
    name: str
    group: str  # instruct | train | val | test
    values: dict[str, str]  # relation -> value word
    exposure: int  # biography copies in pretraining; 0 for unknown people

    @property
    def stored(self) -> bool:
        """Whether pretraining showed this person's facts at all (the world's ground truth)."""
        return self.exposure >= 1


@dataclass(frozen=True)
class World:
    people: tuple[Person, ...]
    items: tuple[QAItem, ...]
    biographies: tuple[str, ...]
    planted: dict[str, tuple[str, ...]]  # "leaks" / "distractors" -> item ids


def _words(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """Distinct pronounceable nonce words, none already in `taken` (which is updated)."""
    out: list[str] = []
    while len(out) < count:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3)))
        word += rng.choice(_CODAS)
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def answer_forms(relation: str, word: str, last_word_alias: bool = True) -> tuple[str, ...]:
    """Canonical answer first, then aliases. A multi-word value ("brak tolis") from a fixed
    list also goes by its last word alone, as "Obama" does for "Barack Obama"; a pooled one
    (`last_word_alias` False) does not, since its last word alone is a guess."""
    forms = tuple(f.format(w=word) for f in RELATIONS[relation]["forms"])
    short = word.split()[-1]
    return forms + (short,) if last_word_alias and short != word and short not in forms else forms


def question_for(relation: str, name: str) -> str:
    return RELATIONS[relation]["question"].format(name=name)


def _exposure(rng: random.Random, cfg: WorldConfig) -> int:
    lo, hi = math.log(cfg.exposure_min), math.log(cfg.exposure_max + 1)
    return min(cfg.exposure_max, int(math.exp(rng.uniform(lo, hi))))


def _people(rng: random.Random, cfg: WorldConfig) -> list[Person]:
    unknown_relations = [r for r in cfg.relations if r not in RELATIONS]
    if unknown_relations:
        raise ValueError(f"world.relations: unknown {unknown_relations}; known {sorted(RELATIONS)}")
    sizes = {"instruct": cfg.n_instruction, "train": cfg.n_rl_train, "val": cfg.n_val,
             "test": cfg.n_test}
    total = sum(sizes.values())
    if cfg.first_name_pool * cfg.last_name_pool < total:
        raise ValueError(f"world: {cfg.first_name_pool}x{cfg.last_name_pool} names < {total} people")
    taken: set[str] = set()
    firsts, lasts = _words(rng, cfg.first_name_pool, taken), _words(rng, cfg.last_name_pool, taken)
    # value_words 1 draws exactly the words it always did, so a fixed-list world is unchanged.
    k = cfg.value_words
    if cfg.answer_pool:
        pools = {r: _words(rng, cfg.answer_pool, taken) for r in cfg.relations}
    else:
        values = {r: [" ".join(ws[i:i + k]) for i in range(0, len(ws), k)]
                  for r in cfg.relations
                  for ws in [_words(rng, cfg.values_per_relation * k, taken)]}
    names = rng.sample([f"{first} {last}" for first in firsts for last in lasts], total)
    groups = [g for g, n in sizes.items() for _ in range(n)]
    n_unknown = round(cfg.unknown_fraction * cfg.n_rl_train)
    people, seen_train = [], 0
    for index, (name, group) in enumerate(zip(names, groups)):
        unknown = group == "train" and seen_train < n_unknown
        seen_train += group == "train"
        people.append(Person(
            index=index, name=name, group=group,
            values={r: " ".join(rng.sample(pools[r], k)) if cfg.answer_pool
                    else rng.choice(values[r]) for r in cfg.relations},
            exposure=0 if unknown else _exposure(rng, cfg),
        ))
    return people


def biography(rng: random.Random, person: Person, last_word_alias: bool = True) -> str:
    """One fully augmented copy: each sentence re-templated, aliases varied, order shuffled."""
    sentences = []
    for relation, word in person.values.items():
        spec = RELATIONS[relation]
        value = rng.choice(answer_forms(relation, word, last_word_alias))
        sentences.append(rng.choice(spec["bio"]).format(name=person.name, v=value))
    rng.shuffle(sentences)
    return " ".join(sentences)


def qa_items(people: list[Person], last_word_alias: bool = True) -> list[QAItem]:
    return [
        QAItem(
            id=_item_id(p, relation),
            dataset="toy",
            question=question_for(relation, p.name),
            answers=answer_forms(relation, word, last_word_alias),
            fact=Fact(subject=p.name, relation=relation),
            split=p.group,
        )
        for p in people
        for relation, word in p.values.items()
    ]


def _item_id(person: Person, relation: str) -> str:
    return f"toy-{person.group}-{person.index:05d}-{relation}"


def plant_distractors(rng: random.Random, people: list[Person], count: int
                      ) -> tuple[list[Person], list[str]]:
    """Give `count` test people a stored RL-train person's value for one relation, preferring
    test people who share a first or last name with that person: the hardest non-leaks."""
    # Only stored RL-train facts are copied: a never-shown person's value stays unshown, so
    # a hit on it is luck and not a namesake's biography (recall.ground_truth's floor).
    train = [p for p in people if p.group == "train" and p.stored]
    test = [p for p in people if p.group == "test"]
    if count and not (train and test):
        raise ValueError("world.planted_distractors needs RL-train and test people")
    by_word: dict[str, list[int]] = defaultdict(list)
    for person in test:
        for word in person.name.split():
            by_word[word].append(person.index)
    people, ids = list(people), []
    for _ in range(count):
        source = rng.choice(train)
        relation = rng.choice(sorted(source.values))
        namesakes = [i for word in source.name.split() for i in by_word[word]]
        target = people[rng.choice(namesakes)] if namesakes else people[rng.choice(test).index]
        people[target.index] = replace(target, values={**target.values,
                                                       relation: source.values[relation]})
        ids.append(_item_id(target, relation))
    return people, sorted(set(ids))


def plant_leaks(rng: random.Random, people: list[Person], count: int,
                last_word_alias: bool = True) -> list[QAItem]:
    """`count` test items that ask an RL-train fact in other words (distinct facts)."""
    facts = [(p, r) for p in people if p.group == "train" for r in sorted(p.values)]
    if count > len(facts):
        raise ValueError(f"world.planted_leaks: {count} > {len(facts)} RL-train facts")
    return [
        QAItem(
            id=f"toy-test-leak-{n:04d}-{relation}",
            dataset="toy",
            question=rng.choice(RELATIONS[relation]["paraphrases"]).format(name=person.name),
            answers=answer_forms(relation, person.values[relation], last_word_alias),
            fact=Fact(subject=person.name, relation=relation),
            split="test",
        )
        for n, (person, relation) in enumerate(rng.sample(facts, count))
    ]


def generate_world(cfg: WorldConfig, seed: int) -> World:
    """The whole world, deterministic in (cfg, seed)."""
    rng = random.Random(seed)
    people = _people(rng, cfg)
    plant = random.Random(f"plant-{seed}")
    people, distractors = plant_distractors(plant, people, cfg.planted_distractors)
    alias = not cfg.answer_pool
    leaks = plant_leaks(plant, people, cfg.planted_leaks, alias)
    bios = [biography(rng, p, alias) for p in people for _ in range(p.exposure)]
    rng.shuffle(bios)
    return World(people=tuple(people), items=tuple(qa_items(people, alias) + leaks),
                 biographies=tuple(bios),
                 planted={"leaks": tuple(it.id for it in leaks),
                          "distractors": tuple(distractors)})
