"""Model staging: a local directory is copied with its source recorded; a Hub source must
pin a commit; offline staging from the Hub is a clear error, never a silent fallback."""

import json

import pytest

from recall.staging import SOURCE_FILE, ModelSource, check_source, stage_model


def test_local_source_is_copied_and_recorded(tmp_path):
    src = tmp_path / "pre-staged"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": "qwen2"}')
    out = tmp_path / "models/base"
    out.mkdir(parents=True)
    (out / "stale.bin").write_text("from an earlier run")
    record = stage_model("base", ModelSource("local", "", "", str(src)), out)
    assert record == {"source": "local", "path": str(src)}
    assert json.loads((out / SOURCE_FILE).read_text()) == record
    assert (out / "config.json").read_text() == '{"model_type": "qwen2"}'
    assert not (out / "stale.bin").exists()


def test_hub_source_must_pin_a_full_commit():
    problems = check_source("judge", ModelSource("hub", "Qwen/Qwen2.5-72B-Instruct", "main", ""))
    assert problems == ["models.judge.revision must be a full 40-hex commit of "
                        "Qwen/Qwen2.5-72B-Instruct (a branch moves under a running study), "
                        "got 'main'"]
    assert "models.base.repo is empty" in check_source("base", ModelSource("hub", "", "a" * 40, ""))[0]
    assert check_source("base", ModelSource("hub", "org/m", "0123456789abcdef" * 2 + "01234567",
                                            "")) == []


def test_hub_staging_offline_is_an_error_naming_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = ModelSource("hub", "Qwen/Qwen2.5-7B-Instruct", "a09a35458c702b33eeacc393d103063234e8bc28", "")
    with pytest.raises(RuntimeError, match="staging Qwen/Qwen2.5-7B-Instruct@a09a3545.* needs the "
                                           "Hub, but HF_HUB_OFFLINE=1"):
        stage_model("base", src, tmp_path / "base")


def test_none_leaves_a_recorded_empty_directory_and_pretrain_is_not_staged(tmp_path):
    assert stage_model("embedder", ModelSource("none", "", "", ""), tmp_path / "e") == \
        {"source": "none"}
    with pytest.raises(ValueError, match="models.base.source 'pretrain' is built by its own stage"):
        stage_model("base", ModelSource("pretrain", "", "", ""), tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="models.base.path: no directory"):
        stage_model("base", ModelSource("local", "", "", str(tmp_path / "missing")), tmp_path / "b")


_SAVE_AGAIN = """
import sys
from transformers import AutoModelForCausalLM
from recall.engines import load_tokenizer
from recall.staging import save_model
src, out = sys.argv[1:]
save_model(AutoModelForCausalLM.from_pretrained(src), load_tokenizer(src), out)
"""


def test_a_saved_model_depends_on_the_model_not_the_offline_variables(tiny_model, tmp_path):
    # transformers reads HF_HUB_OFFLINE once, at import: each environment is a fresh process
    # running the same code, so only the variables differ.
    import os
    import subprocess
    import sys

    model_dir, _, _ = tiny_model
    bare = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved = {}
    for name, env in (("online", bare),
                      ("offline", {**bare, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})):
        subprocess.run([sys.executable, "-c", _SAVE_AGAIN, str(model_dir), str(tmp_path / name)],
                       env=env, check=True, capture_output=True, timeout=300)
        saved[name] = {p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())}
    assert "tokenizer_config.json" in saved["online"]
    assert saved["online"] == saved["offline"]
    assert b"local_files_only" not in saved["offline"]["tokenizer_config.json"]
