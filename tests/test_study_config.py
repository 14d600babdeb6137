import pytest
from conftest import micro_params_dict

from recall.config import ConfigError, params_from_dict
from recall.study_config import AttributionConfig, GRPOConfig, RLOOConfig, StudyConfig


def test_study_sections_are_typed_by_their_own_classes():
    params = params_from_dict(micro_params_dict())
    assert type(params.grpo) is GRPOConfig and isinstance(params.grpo, RLOOConfig)
    assert type(params.rloo) is RLOOConfig
    assert isinstance(params.study, StudyConfig)
    assert isinstance(params.attribution, AttributionConfig)
    assert all(isinstance(v, tuple) for v in params.attribution.partitions.values())


@pytest.mark.parametrize("sample_seeds", [[], [7]])
def test_sample_seeds_must_be_a_nonempty_subset_of_the_seeds(sample_seeds):
    data = micro_params_dict()
    data["study"]["sample_seeds"] = sample_seeds
    with pytest.raises(ConfigError, match=r"study\.sample_seeds .* must be a non-empty subset"):
        params_from_dict(data)


def test_rloo_has_no_loss_type_only_grpo_does():
    data = micro_params_dict()
    data["rloo"]["loss_type"] = "dapo"
    with pytest.raises(ConfigError, match=r"unknown key 'rloo\.loss_type'"):
        params_from_dict(data)


def test_cot_section_is_checked():
    data = micro_params_dict()
    data["cot"]["max_tokens"] = 0
    with pytest.raises(ConfigError, match=r"cot\.max_tokens must be at least 1, got 0"):
        params_from_dict(data)
    data["cot"] = {"run": "yes", "max_tokens": 8}
    with pytest.raises(ConfigError, match=r"cot\.run"):
        params_from_dict(data)
