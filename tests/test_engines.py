import pytest

from recall.contract import SamplingSettings
from recall.engines import TransformersEngine, make_engine


def test_transformers_engine_shapes_and_greedy_determinism(tiny_model):
    model_dir, world, _ = tiny_model
    engine = TransformersEngine(str(model_dir), max_sequences=16)
    prompts = [f"question : {i.question} answer :" for i in world.items[:5]]
    sampled = engine.generate(prompts, SamplingSettings(n=6, temperature=1.0, max_tokens=4))
    assert [len(s) for s in sampled] == [6] * 5
    assert all(isinstance(c, str) and len(c.split()) <= 4 for s in sampled for c in s)
    greedy1 = engine.generate(prompts, SamplingSettings(n=1, temperature=0.0, max_tokens=4))
    greedy2 = engine.generate(prompts, SamplingSettings(n=1, temperature=0.0, max_tokens=4))
    assert greedy1 == greedy2


def test_sampling_is_seeded(tiny_model):
    model_dir, world, _ = tiny_model
    engine = TransformersEngine(str(model_dir))
    prompts = [f"question : {i.question} answer :" for i in world.items[:3]]
    s = SamplingSettings(n=4, temperature=1.0, max_tokens=4, seed=7)
    assert engine.generate(prompts, s) == engine.generate(prompts, s)


def test_unknown_engine_is_an_error(tiny_model):
    with pytest.raises(ValueError, match="sampling.engine"):
        make_engine("tgi", str(tiny_model[0]))
