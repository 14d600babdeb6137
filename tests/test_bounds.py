"""Every numeric params knob has a range, and a value outside it fails at load, named."""

import dataclasses
import typing

import pytest
from conftest import micro_params_dict

from recall.bounds import BOUNDS, bound_key
from recall.config import ConfigError, Params, params_from_dict


def _numeric_fields(cls, seen=None) -> set[str]:
    seen = set() if seen is None else seen
    out = set()
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        inner = args[0] if typing.get_origin(hint) is tuple and args else hint
        if dataclasses.is_dataclass(inner):
            if inner not in seen:
                seen.add(inner)
                out |= _numeric_fields(inner, seen)
        elif typing.get_origin(inner) is typing.Literal:
            continue  # a choice of names ("float32" is a dtype's name, not a number)
        elif int in (inner, *args) or float in (inner, *args) or "int" in str(hint) \
                or "float" in str(hint):
            out.add(bound_key(cls, name))
    return out - {"SearchDim.low", "SearchDim.high", "SearchDim.choices"}  # a sweep's own space


def test_every_numeric_field_has_a_range_and_every_range_a_field():
    fields = _numeric_fields(Params)
    assert fields - set(BOUNDS) == set(), "numeric params without a range in recall/bounds.py"
    assert set(BOUNDS) - fields == set(), "ranges for fields that do not exist"


@pytest.mark.parametrize("section, key, value, message", [
    ("dedup", "min_overlap", 7, r"key 'dedup\.min_overlap' must be in \[1e-06, 1\.0\], got 7"),
    ("dedup", "top_k", -5, r"key 'dedup\.top_k' must be >= 1, got -5"),
    ("dedup", "max_df", -1, r"key 'dedup\.max_df' must be in \[1e-06, 1\.0\], got -1"),
    ("grpo", "group_size", 1, r"key 'grpo\.group_size' must be >= 2, got 1"),
    ("analyze", "pass_k", [1, 0], r"key 'analyze\.pass_k' must be >= 1, got \(1, 0\)"),
    ("judge", "max_failure_rate", 1.5, r"key 'judge\.max_failure_rate' must be in \[0\.0, 1\.0\]"),
])
def test_out_of_range_is_named_with_its_range(section, key, value, message):
    data = micro_params_dict()
    data[section][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(data)


def test_a_bool_is_not_a_number():
    data = micro_params_dict()
    data["dedup"]["top_k"] = True
    with pytest.raises(ConfigError, match=r"key 'dedup\.top_k' expects an integer, got the "
                                          "boolean true"):
        params_from_dict(data)
    data = micro_params_dict()
    data["analyze"]["pass_k"] = [1, False]
    with pytest.raises(ConfigError, match=r"key 'analyze\.pass_k\[1\]' expects an integer"):
        params_from_dict(data)


def test_a_choice_lists_the_allowed_values():
    data = micro_params_dict()
    data["dedup"]["verifier"] = "embedding"
    with pytest.raises(ConfigError, match=r"key 'dedup\.verifier' must be one of \['heuristic', "
                                          r"'llm', 'none'\], got 'embedding'"):
        params_from_dict(data)


def test_a_string_for_a_list_says_so():
    data = micro_params_dict()
    data["dedup"]["targets"] = "test"
    with pytest.raises(ConfigError) as err:
        params_from_dict(data)
    assert str(err.value) == ("params: key 'dedup.targets' expects a list (YAML [a, b]), got "
                              "str 'test'")
