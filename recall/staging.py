"""Model staging: put a pinned model into `models/<role>` so every later stage runs offline.

A role (base policy, judge, embedder) comes from one of:
- `pretrain` / `train`: built by the pipeline itself (the toy profile's GPT-2s);
- `hub`: a Hugging Face repo at a pinned commit, downloaded with the token in `HF_TOKEN`
  (the paper profile; the cluster's staging Job runs this with network access);
- `local`: a directory already on disk (a pre-staged volume, or the micro models of tests);
- `none`: not used (no embedder with TF-IDF retrieval; a judge served elsewhere).

The staged directory records where it came from (`recall_source.json`), so a run can be
traced to the exact revision and a different request is never mistaken for a staged one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recall.contract import write_json

SOURCE_FILE = "recall_source.json"
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelSource:
    source: Literal["pretrain", "train", "hub", "local", "none"]
    repo: str  # hub: the Hugging Face repo id, e.g. Qwen/Qwen2.5-7B-Instruct
    revision: str  # hub: the full 40-hex commit, so a rerun gets the same weights
    path: str  # local: the directory to copy


@dataclass(frozen=True)
class ModelsConfig:
    """Where each model of a run comes from."""

    base: ModelSource  # the policy every method starts from
    judge: ModelSource  # the LLM judge (the toy trains its own)
    embedder: ModelSource  # dense dedup retrieval (a sentence-transformers directory)


def check_source(role: str, src: ModelSource) -> list[str]:
    """What is wrong with `src` as the source of `role` (empty when nothing)."""
    key = f"models.{role}"
    problems = []
    if src.source == "hub":
        if not src.repo:
            problems.append(f"{key}.repo is empty, but {key}.source is 'hub'")
        if not _SHA.match(src.revision):
            problems.append(f"{key}.revision must be a full 40-hex commit of {src.repo or 'the repo'}"
                            f" (a branch moves under a running study), got {src.revision!r}")
    if src.source == "local" and not src.path:
        problems.append(f"{key}.path is empty, but {key}.source is 'local'")
    return problems


def stage_model(role: str, src: ModelSource, out: Path) -> dict:
    """Stage `src` into `out`; returns the record written to `out/recall_source.json`."""
    problems = check_source(role, src)
    if problems:
        raise ValueError("; ".join(problems))
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    if src.source == "hub":
        record = _from_hub(src, out)
    elif src.source == "local":
        if not Path(src.path).is_dir():
            raise FileNotFoundError(f"models.{role}.path: no directory {src.path}")
        shutil.copytree(src.path, out)
        record = {"source": "local", "path": str(src.path)}
    elif src.source == "none":
        out.mkdir(parents=True)
        record = {"source": "none"}
    else:
        raise ValueError(f"models.{role}.source {src.source!r} is built by its own stage, "
                         "not staged")
    write_json(out / SOURCE_FILE, record)
    return record


def stage_logged(role: str, src: ModelSource, out: Path, metrics: Path | None = None) -> dict:
    """`stage_model`, with its record as the stage's metrics file and as tags of the active
    MLflow run (the run's provenance: repo and revision, or path)."""
    import mlflow

    record = stage_model(role, src, out)
    if metrics is not None:
        write_json(metrics, record)
    mlflow.set_tags({f"{role}.{k}": v for k, v in record.items()})
    return record


def _from_hub(src: ModelSource, out: Path) -> dict:
    from huggingface_hub import snapshot_download

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RuntimeError(f"staging {src.repo}@{src.revision} needs the Hub, but HF_HUB_OFFLINE=1:"
                           " run the staging step where the network is reachable (the cluster's "
                           "staging Job), or stage a local copy with source: local")
    path = snapshot_download(src.repo, revision=src.revision, local_dir=out,
                             token=os.environ.get("HF_TOKEN") or None)
    return {"source": "hub", "repo": src.repo, "revision": src.revision, "path": str(path)}


_HASH_LIMIT = 4 << 30  # above this, weights are identified by name, size and mtime, not content


def weights_digest(model_dir: str | Path) -> str:
    """Identity of a model directory's weights (safetensors files)."""
    files = [(f, f.stat()) for f in sorted(Path(model_dir).glob("*.safetensors"))]
    digest = hashlib.sha256()
    big = sum(st.st_size for _, st in files) > _HASH_LIMIT
    for f, st in files:
        digest.update(f.name.encode())
        digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode() if big else f.read_bytes())
    return digest.hexdigest()[:16]


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """A model directory that every engine loads alike: the weights, the tokenizer, and a
    generation config that stops at the tokenizer's eos and pads with its pad token."""
    out_dir = Path(out_dir)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    save_tokenizer(tokenizer, out_dir)
    return out_dir


# Written by transformers into tokenizer_config.json from how the tokenizer was loaded, not
# from what it is: `local_files_only` follows HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE at load
# time, so the same model saved under other offline variables would hash differently and
# `dvc repro` would rerun everything downstream of an identical model.
_LOAD_TIME_KEYS = ("local_files_only",)


def save_tokenizer(tokenizer, out_dir: str | Path) -> None:
    """`tokenizer.save_pretrained(out_dir)` without the load-time environment: the bytes
    depend on the tokenizer only."""
    for key in _LOAD_TIME_KEYS:
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(out_dir)


def drop_model_cards(checkpoint_dir: str | Path) -> None:
    """Remove the README.md model card TRL writes beside its checkpoints: its tags come from
    a set, so its bytes change from run to run, and the checkpoint directory is a tracked
    stage output."""
    Path(checkpoint_dir, "README.md").unlink(missing_ok=True)
