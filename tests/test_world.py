from collections import Counter

from conftest import micro_params_dict

from recall.config import params_from_dict
from recall.contract import item_from_dict
from recall.judge.rules import normalize_answer
from recall.world import answer_forms, generate_world


def _world(seed=0, **world):
    data = micro_params_dict()
    data["world"].update(world)
    return generate_world(params_from_dict(data).world, seed=seed)


def test_deterministic_from_seed():
    assert _world(seed=3) == _world(seed=3)
    assert _world(seed=3).items != _world(seed=4).items


def test_groups_are_disjoint_with_configured_sizes():
    world = _world()
    groups = Counter(p.group for p in world.people)
    assert groups == {"instruct": 40, "train": 16, "val": 8, "test": 16}
    names = [p.name for p in world.people]
    assert len(set(names)) == len(names)
    subjects = {}
    for item in world.items:
        if item.id not in world.planted["leaks"]:
            subjects.setdefault(item.fact.subject, set()).add(item.split)
    assert all(len(splits) == 1 for splits in subjects.values())


def test_planted_leaks_reword_rl_train_facts_and_distractors_share_answer_and_a_name():
    world = _world(planted_leaks=10, planted_distractors=10)
    by_id = {it.id: it for it in world.items}
    train = {it.fact: it for it in world.items if it.split == "train"}
    leaks = [by_id[i] for i in world.planted["leaks"]]
    assert len(leaks) == 10 and len({it.fact for it in leaks}) == 10
    for leak in leaks:
        original = train[leak.fact]
        assert leak.split == "test" and leak.answers == original.answers
        assert leak.question != original.question and leak.fact.subject in leak.question
    people = {p.name: p for p in world.people}
    train_people = [p for p in world.people if p.group == "train"]
    for item in (by_id[i] for i in world.planted["distractors"]):
        person = people[item.fact.subject]
        assert item.split == "test" and person.group == "test"
        value = person.values[item.fact.relation]
        assert any(p.values[item.fact.relation] == value for p in train_people)
    # Planting has its own random stream: the unplanted world is the same people otherwise.
    plain = _world(planted_leaks=0, planted_distractors=0)
    assert [p.name for p in plain.people] == [p.name for p in world.people]


def test_unknown_people_have_no_biography_and_are_all_train():
    world = _world(unknown_fraction=0.5)
    unknown = [p for p in world.people if p.exposure == 0]
    assert len(unknown) == 8 and all(p.group == "train" for p in unknown)
    corpus = "\n".join(world.biographies)
    assert not any(p.name + " " in corpus for p in unknown)
    known = [p for p in world.people if p.exposure > 0]
    assert all(p.name in corpus for p in known)
    assert len(world.biographies) == sum(p.exposure for p in world.people)


def test_exposure_is_long_tailed_within_bounds():
    world = _world(exposure_min=1, exposure_max=100, unknown_fraction=0.0)
    exposures = sorted(p.exposure for p in world.people)
    assert exposures[0] >= 1 and exposures[-1] <= 100
    median = exposures[len(exposures) // 2]
    assert median < sum(exposures) / len(exposures)  # right-skewed: mean above median


def test_items_follow_the_contract_and_biographies_state_the_facts():
    world = _world()
    person = next(p for p in world.people if p.exposure > 0)
    bios = [b for b in world.biographies if person.name in b]
    for item in (i for i in world.items if i.fact.subject == person.name):
        item_from_dict({**item.__dict__, "answers": list(item.answers),
                        "fact": item.fact.__dict__}, "world")
        word = person.values[item.fact.relation]
        assert item.answers == answer_forms(item.fact.relation, word)
        assert all(any(normalize_answer(a) in normalize_answer(b) for a in item.answers)
                   for b in bios)


def test_multi_word_values_have_a_last_word_alias_and_leave_the_default_world_alone():
    one, two = _world(), _world(value_words=2)
    # value_words 1 is the world that existed before the knob: same draws, same answers.
    assert [it.answers for it in one.items] == [it.answers for it in _world(value_words=1).items]
    item = next(it for it in two.items if it.fact.relation == "employer")
    value = next(p for p in two.people if p.name == item.fact.subject).values["employer"]
    first, last = value.split()
    assert item.answers == (f"{value} corp", value, f"{value} corporation", last)
    values = {p.values["employer"] for p in two.people}
    assert all(len(v.split()) == 2 for v in values)
    # Every word of every value is distinct, so a last-word alias names one value only.
    words = [w for p in two.people for v in p.values.values() for w in v.split()]
    assert len({w for v in values for w in v.split()}) == 2 * len(values)
    assert set(words).isdisjoint(w for p in two.people for w in p.name.split())


def test_value_words_below_one_is_a_config_error():
    import pytest

    from recall.config import ConfigError

    data = micro_params_dict()
    data["world"]["value_words"] = 0
    with pytest.raises(ConfigError, match="world.value_words must be >= 1, got 0"):
        params_from_dict(data)


def test_pooled_answers_are_ordered_draws_without_a_last_word_alias():
    world = _world(value_words=2, answer_pool=10)
    people = {p.name: p for p in world.people}
    pools = {}
    for item in world.items:
        value = people[item.fact.subject].values[item.fact.relation]
        words = value.split()
        assert len(words) == 2 and words[0] != words[1]
        # every alias holds the whole value; none is the last word alone
        assert all(value in a for a in item.answers) and words[-1] not in item.answers
        pools.setdefault(item.fact.relation, set()).update(words)
    assert all(len(words) <= 10 for words in pools.values())
    # 2 of 10 words: 90 ordered answers per relation, so people share few of them
    values = Counter(p.values["employer"] for p in world.people)
    assert len(values) > 0.5 * len(world.people)


def test_distractors_copy_only_stored_facts_and_stored_follows_exposure():
    world = _world(unknown_fraction=0.5, planted_distractors=30)
    unknown = [p for p in world.people if not p.stored]
    assert unknown and all(p.exposure == 0 and p.group == "train" for p in unknown)
    test_values = {(r, v) for p in world.people if p.group == "test" for r, v in p.values.items()}
    # a never-shown person's value reaches pretraining through no distractor
    fixed_list_collisions = {(r, v) for p in unknown for r, v in p.values.items()} & test_values
    shown = {(r, v) for p in world.people if p.stored for r, v in p.values.items()}
    assert fixed_list_collisions <= shown  # collisions only where the fixed list repeats a value


def test_answer_pool_smaller_than_the_words_per_answer_is_a_config_error():
    import pytest

    from recall.config import ConfigError

    data = micro_params_dict()
    data["world"].update(value_words=3, answer_pool=2)
    with pytest.raises(ConfigError, match="world.answer_pool 2 cannot fill world.value_words 3"):
        params_from_dict(data)
