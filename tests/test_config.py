import dataclasses

import pytest
import yaml
from conftest import ROOT, micro_params_dict

from recall.config import ConfigError, fingerprint, flat_dict, load_params, params_from_dict, with_overrides


def test_params_yaml_loads_typed_and_frozen():
    params = load_params(ROOT / "params.yaml")
    assert params.grpo.group_size == 5
    assert isinstance(params.grpo.learning_rate, float)
    assert params.analyze.bin_edges == (0, 1, 2, 4, 8, 16, 32, 64, 128)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.grpo.beta = 0.5


def test_unknown_key_is_named_with_its_section():
    data = micro_params_dict()
    data["grpo"]["learning_rat"] = 1.0
    with pytest.raises(ConfigError, match=r"unknown key 'grpo\.learning_rat'"):
        params_from_dict(data)


def test_unknown_key_in_a_dataset_entry_is_named_with_its_index():
    data = micro_params_dict()
    data["data"]["datasets"] = [{"name": "a", "format": "nq_open", "role": "test", "path": "x"},
                                {"name": "b", "format": "popqa", "role": "split", "pth": "y"}]
    with pytest.raises(ConfigError, match=r"unknown key 'data\.datasets\[1\]\.pth'"):
        params_from_dict(data)
    data["data"]["datasets"][1] = {"name": "b", "format": "webqa", "role": "split"}
    with pytest.raises(ConfigError, match="format"):
        params_from_dict(data)


@pytest.mark.parametrize("name", ["params-paper.yaml"])
def test_real_data_and_paper_params_files_load(name):
    params = load_params(ROOT / name)
    assert params.data.source == "datasets" and params.data.datasets


def test_unknown_section_is_an_error():
    data = micro_params_dict()
    data["gpro"] = {}
    with pytest.raises(ConfigError, match="unknown key 'gpro'"):
        params_from_dict(data)


def test_wrong_type_names_key_and_expected_type():
    data = micro_params_dict()
    data["grpo"]["group_size"] = "five"
    with pytest.raises(ConfigError, match=r"'grpo\.group_size' expects int, got 'five'"):
        params_from_dict(data)


def test_bad_literal_is_an_error():
    data = micro_params_dict()
    data["sampling"]["engine"] = "tgi"
    with pytest.raises(ConfigError, match=r"sampling\.engine"):
        params_from_dict(data)


def test_missing_key_is_an_error():
    data = micro_params_dict()
    del data["grpo"]["beta"]
    with pytest.raises(ConfigError, match=r"grpo\.beta"):
        params_from_dict(data)


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    # PyYAML reads 1e-6 as a string; the config must still take it as the float it means.
    data = micro_params_dict()
    path = tmp_path / "params.yaml"
    data["grpo"]["learning_rate"] = 3.0e-5
    text = yaml.safe_dump(data)
    assert "learning_rate: 3.0e-05" in text
    path.write_text(text.replace("learning_rate: 3.0e-05", "learning_rate: 1e-6"))
    assert load_params(path).grpo.learning_rate == pytest.approx(1e-6)


def test_flat_dict_and_fingerprint():
    params = params_from_dict(micro_params_dict())
    flat = flat_dict(params)
    assert flat["grpo.group_size"] == 4 and flat["world.relations"][0] == "birth_city"
    other = dataclasses.replace(params.grpo, beta=0.5)
    assert fingerprint(params.grpo) != fingerprint(other)
    assert fingerprint(params.grpo) == fingerprint(dataclasses.replace(params.grpo))


def test_scalar_where_a_list_is_expected_is_an_error():
    data = micro_params_dict()
    data["world"]["relations"] = "birth_city"
    with pytest.raises(ConfigError, match=r"'world\.relations' expects"):
        params_from_dict(data)


def test_overrides_are_validated_like_a_file():
    params = load_params(ROOT / "params.yaml")
    before = (params.grpo.beta, params.grpo.group_size)
    wanted = (before[0] + 0.01, before[1] * 2)  # both differ from the file's values
    changed = with_overrides(params, {"grpo.beta": wanted[0], "grpo.group_size": wanted[1]})
    assert (changed.grpo.beta, changed.grpo.group_size) == wanted
    assert (params.grpo.beta, params.grpo.group_size) == before  # the original is untouched
    assert changed.grpo.learning_rate == params.grpo.learning_rate  # nothing else moved
    with pytest.raises(ConfigError, match="unknown key 'grpo.bta'"):
        with_overrides(params, {"grpo.bta": 0.01})
    with pytest.raises(ConfigError, match="'grpo.group_size' expects int"):
        with_overrides(params, {"grpo.group_size": "eight"})


def test_sweep_space_keeps_integer_choices_and_rejects_unknown_dimension_keys():
    params = load_params(ROOT / "params.yaml")
    for key, dim in params.sweep.space.items():
        with_overrides(params, {key: dim.choices[0] if dim.choices else dim.low})
    data = micro_params_dict()
    data["sweep"]["space"] = {"grpo.beta": {"type": "float", "low": 0.0, "hihg": 1.0}}
    with pytest.raises(ConfigError, match="hihg"):
        params_from_dict(data)


def test_bases_and_sample_methods_refuse_what_cannot_run():
    data = micro_params_dict()
    data["bases"]["methods"] = ["grpo", "dpo"]
    with pytest.raises(ConfigError, match="bases.methods \\['grpo', 'dpo'\\]: only grpo, rloo and sft"):
        params_from_dict(data)
    data = micro_params_dict()
    data["study"]["sample_methods"] = ["sft"]
    with pytest.raises(ConfigError, match="study.sample_methods \\['sft'\\] must include grpo"):
        params_from_dict(data)
