from collections import Counter

from recall.config import params_from_dict
from recall.contract import item_from_dict
from recall.judge import normalize_answer
from recall.world import answer_forms, generate_world

from conftest import micro_params_dict


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
        subjects.setdefault(item.fact.subject, set()).add(item.split)
    assert all(len(splits) == 1 for splits in subjects.values())


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
