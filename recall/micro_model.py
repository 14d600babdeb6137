"""A tiny, random-initialised chat model of a real architecture (Qwen2), built in seconds.

The paper profile runs instruct models through their chat template. Nothing can be
downloaded here, so the tests and `scripts/gpu_smoke.sh` build a micro stand-in with the
same shape of everything that matters to the code path: Qwen2's architecture (which
transformers, TRL and vLLM all load), a byte-level BPE tokenizer with ChatML special
tokens, and Qwen's ChatML chat template. Its answers are noise; it proves the path runs.

    python -m recall.micro_model OUT_DIR --texts ../shared/data/nq_open/NQ-open.dev.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# Qwen2.5-Instruct's ChatML layout (without its tool-calling branches): a default system
# turn, every message framed by <|im_start|>role ... <|im_end|>, then the assistant header.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on `texts`, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    # Like Qwen2.5-Instruct: <|im_end|> ends a turn, <|endoftext|> pads.
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT,
                                   additional_special_tokens=[IM_START])
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_chat_model(out_dir: Path, texts: Iterable[str], seed: int = 0,
                     hidden_size: int = 64, layers: int = 2, judge_head: bool = False) -> Path:
    """Write a random-initialised Qwen2 model and its chat tokenizer to `out_dir`.

    Two heads of 32: vLLM's CPU attention needs a head size of at least 32. `judge_head`
    zeroes the output layer except the row of "1": under a constraint, greedy decoding then
    picks "1" where the prompt's last hidden state points along that row (about half the
    prompts, each always the same way) and otherwise the allowed token of lowest id ("0";
    "false" for containment). So a micro judge grades deterministically, some answers right
    and some wrong, and never calls a test item a leak, where a random head could call them
    all leaks.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from recall.staging import save_model

    texts = list(texts)
    tokenizer = build_tokenizer(texts)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                         num_attention_heads=hidden_size // 32, num_key_value_heads=1,
                         max_position_embeddings=1024, tie_word_embeddings=not judge_head,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    if judge_head:
        _judge_head(model, tokenizer, list(texts))
    return save_model(model, tokenizer, out_dir)


def _judge_head(model, tokenizer, texts: list[str]) -> None:
    """Zero the output layer but the row of "1", and make that row orthogonal to the mean
    last hidden state of grading prompts: "1" then wins on about half of them (each always
    the same way), "0" on the rest."""
    import torch

    from recall.judge.prompts import JUDGE_BINARY

    prompts = [tokenizer.apply_chat_template(
        [{"role": "user", "content": JUDGE_BINARY.render(q, (a,), c)}], tokenize=False,
        add_generation_prompt=True) for q, a, c in zip(texts[0::3], texts[1::3], texts[2::3])][:64]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=False)
    with torch.no_grad():
        last = model.model(**enc).last_hidden_state[:, -1]
        one = tokenizer.convert_tokens_to_ids("1")
        row = model.lm_head.weight[one].clone()
        mean = last.mean(0)
        row -= (row @ mean) / (mean @ mean) * mean
        model.lm_head.weight.zero_()
        model.lm_head.weight[one] = row * 10 / row.norm()


def questions_from(path: Path) -> list[str]:
    """Question and answer text of a JSONL QA file (NQ-open's format), as tokenizer data."""
    texts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts.append(row["question"])
        texts.extend(row.get("answer", []))
    return texts


# The paper profile at micro scale: only sizes, steps and sample counts change, plus where
# the micro inputs live (tests/pipelines/test_paper_profile.py, benchmarks/gpu_smoke.py).
MICRO_PAPER_SCALE = {
    "data": {"train_size": 120, "val_size": 16},
    "dedup": {"top_k": 2},
    "rollout": {"max_tokens": 12, "vllm": "none"},
    "compute": {"num_processes": 1, "accelerate_config": "", "max_model_len": 512},
    "sampling": {"n_samples": 4, "pass_k_samples": 8},
    "grpo": {"prompts_per_step": 8, "micro_batch_prompts": 4, "group_size": 4, "epochs": 1,
             "save_steps": 2},
    "study": {"seeds": [0], "sample_seeds": [0], "eval_points": 2, "majority_k": 4},
    "cot": {"max_tokens": 16},
    "analyze": {"pass_k": [1, 2, 4, 8], "bin_edges": [0, 1, 2, 4]},
    "rloo": {"prompts_per_step": 8, "micro_batch_prompts": 4, "group_size": 4, "epochs": 1,
             "save_steps": 2},
    "sft": {"epochs": 1, "batch_size": 8},
    "sft_known": {"epochs": 1, "batch_size": 8},
    "dpo": {"epochs": 1, "batch_size": 8},
    "rft": {"rounds": 2, "samples_per_item": 2, "batch_size": 8},
    # Accessibility counts correct answers of sampling.n_samples (4 here, 128 in the paper).
    "attribution": {"partitions": {"inaccessible": [0, 0], "any": [0, 4]},
                    "prompts_per_step": 4},
    "judge": {"base_url": "", "model": "models/judge", "max_concurrency": 8},
    "tracking": {"uri": "sqlite:///mlflow.db", "log_models": False},
}


def micro_paper_inputs(out: Path, nq_dev: Path, simpleqa: Path) -> Path:
    """Micro inputs in `out`: real NQ-open rows as the train and test files, 30 real
    SimpleQA rows, and three staged-model directories (base, judge, embedder)."""
    rows = Path(nq_dev).read_text(encoding="utf-8").splitlines()
    (out / "nq_train.jsonl").write_text("\n".join(rows[:200]) + "\n")
    (out / "nq_dev.jsonl").write_text("\n".join(rows[200:260]) + "\n")
    csv_rows = Path(simpleqa).read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "simpleqa_test.csv").write_text("".join(csv_rows[:31]))  # header + 30 rows
    texts = questions_from(nq_dev)
    build_chat_model(out / "base", texts, seed=0)
    build_chat_model(out / "judge", texts, seed=1, judge_head=True)
    build_embedder(out / "base", out / "embedder")
    return out


def micro_paper_params(paper_params: Path, inputs: Path, extra: dict | None = None) -> dict:
    """`paper_params` (params-paper.yaml) with MICRO_PAPER_SCALE, the models staged from
    `inputs` (source: local) and the selected datasets read from there; `extra` on top."""
    import yaml

    params = yaml.safe_load(Path(paper_params).read_text())
    for section, values in MICRO_PAPER_SCALE.items():
        params[section].update(values)
    for section, values in (extra or {}).items():
        params[section].update(values)
    for role in ("base", "judge", "embedder"):
        params["models"][role] = {"source": "local", "repo": "", "revision": "",
                                  "path": str(inputs / role)}
    files = {"nq_train": "nq_train.jsonl", "nq_dev": "nq_dev.jsonl",
             "simpleqa_test": "simpleqa_test.csv"}
    for source in params["data"]["datasets"]:
        if source["name"] in files:
            source["path"] = str(inputs / files[source["name"]])
    return params


def scratch_repo(root: Path, dest: Path, params: dict) -> Path:
    """The project at `root` (its files, no outputs) copied into `dest` as a git repo of its
    own with `params` as params.yaml: where a micro study runs `dvc repro` without touching
    the real workspace (the end-to-end tests, benchmarks/gpu_smoke.py)."""
    import shutil
    import subprocess

    import yaml

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=root, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = Path(root) / rel
        if src.is_file() and not rel.startswith(("data/", "models/", "runs/", "metrics/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    identity = ["-c", "user.name=recall", "-c", "user.email=recall@localhost"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", *identity, "commit", "-qm", "micro"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--texts", type=Path, required=True, help="a JSONL file of NQ-open rows")
    args = ap.parse_args()
    build_chat_model(args.out, questions_from(args.texts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()


def build_embedder(model_dir: Path, out_dir: Path) -> Path:
    """A sentence-transformers directory over `model_dir` (mean pooling): the dense dedup
    retriever's format, as the paper profile's staged embedder has it."""
    from sentence_transformers import SentenceTransformer, models

    encoder = models.Transformer(str(model_dir))
    pooling = models.Pooling(encoder.get_word_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(out_dir))
    return Path(out_dir)
