"""The paper's split protocol: sizes, disjointness, seeding, per-source streams."""

import pytest

from recall.config import DataConfig, SourceConfig
from recall.contract import ContractError
from recall.datasets.rows import RawItem
from recall.splitting import selected_sources, split_sources


def _rows(n, tag="q"):
    return [RawItem(f"{i:05d}", f"{tag} {i}?", (f"a{i}",), None) for i in range(n)]


def _cfg(**kw):
    base = dict(source="datasets", select=(), train_size=50, val_size=10, split_fractions=(0.8, 0.1, 0.1),
                datasets=())
    return DataConfig(**{**base, **kw})


def _src(name, role, fmt="nq_open"):
    return SourceConfig(name=name, format=fmt, role=role)


def test_train_role_subsamples_after_carving_val_and_test_role_keeps_all():
    items, summary = split_sources([(_src("nq_train", "train"), _rows(200)),
                                    (_src("nq_dev", "test"), _rows(30))], _cfg(), seed=0)
    assert summary["sources"] == {"nq_train": {"val": 10, "train": 50}, "nq_dev": {"test": 30}}
    assert summary["left_out"] == {"nq_train": 140, "nq_dev": 0}
    train = {it.id for it in items if it.split == "train"}
    val = {it.id for it in items if it.split == "val"}
    assert not train & val and all(i.startswith("nq_train-") for i in train | val)
    test = [it.id for it in items if it.split == "test"]
    assert test == [f"nq_dev-{i:05d}" for i in range(30)]  # original order, all rows


def test_split_role_fractions_and_seed():
    items, summary = split_sources([(_src("popqa", "split", "popqa"), _rows(100))], _cfg(), seed=3)
    assert summary["sources"]["popqa"] == {"train": 80, "val": 10, "test": 10}
    again, _ = split_sources([(_src("popqa", "split", "popqa"), _rows(100))], _cfg(), seed=3)
    other, _ = split_sources([(_src("popqa", "split", "popqa"), _rows(100))], _cfg(), seed=4)
    assert again == items and other != items


def test_adding_a_source_does_not_reshuffle_another():
    one, _ = split_sources([(_src("a", "train"), _rows(100))], _cfg(), seed=0)
    two, _ = split_sources([(_src("b", "split"), _rows(40)), (_src("a", "train"), _rows(100))],
                           _cfg(), seed=0)
    assert [it for it in two if it.id.startswith("a-")] == one


def test_small_train_source_takes_everything():
    _, summary = split_sources([(_src("eqa", "train"), _rows(25))], _cfg(), seed=0)
    assert summary["sources"]["eqa"] == {"val": 10, "train": 15}


def test_bad_fractions_and_repeated_names():
    with pytest.raises(ContractError, match="split_fractions must be three shares summing to 1"):
        split_sources([(_src("p", "split"), _rows(10))], _cfg(split_fractions=(0.5, 0.1)), 0)
    with pytest.raises(ContractError, match=r"repeated: \['x'\]"):
        split_sources([(_src("x", "test"), _rows(2)), (_src("x", "test"), _rows(2))], _cfg(), 0)


def test_select_picks_named_sources_in_order_and_rejects_unknown_names():
    a, b = _src("a", "test"), _src("b", "train")
    assert selected_sources(_cfg(datasets=(a, b), select=("b", "a"))) == [b, a]
    with pytest.raises(ContractError, match=r"data.select names \['c'\], not in data.datasets"):
        selected_sources(_cfg(datasets=(a, b), select=("a", "c")))
