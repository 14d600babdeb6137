"""Pretraining of the toy policy: a word-level tokenizer and a small GPT-2 from scratch.

The result is a standard Hugging Face model directory (config, safetensors weights,
tokenizer.json) that transformers, TRL and vLLM all load unchanged.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Trainer, TrainingArguments

from recall.compute import Resolved, barrier, is_main_process, per_device, trainer_kwargs
from recall.config import PretrainConfig
from recall.contract import QAItem, read_items
from recall.prompts import DIRECT
from recall.staging import save_model

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over every word in `texts` (and the prompt templates)."""
    pre = pre_tokenizers.Whitespace()
    vocab = {PAD: 0, UNK: 1, EOS: 2}
    template_words = DIRECT.render("").split()
    for text in [*template_words, *texts]:
        for word, _ in pre.pre_tokenize_str(text):
            vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    # WordPiece's decoder joins word tokens with spaces, which vLLM's detokenizer also uses.
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token=EOS, bos_token=EOS,
        padding_side="left",
    )


def corpus_documents(biographies: Sequence[str], instruct: Sequence[QAItem], qa_repeats: int,
                     seed: int) -> list[str]:
    """Pretraining documents: biographies plus answer-format QA for instruction people only.

    Instruction QA uses each item's canonical answer, so the format (and when to stop) is
    learned, while no RL-train, val or test fact is ever shown as QA.
    """
    qa = [f"{DIRECT.render(item.question)} {item.answers[0]}" for item in instruct]
    docs = list(biographies) + qa * qa_repeats
    random.Random(seed).shuffle(docs)
    return docs


def pack(tokenizer: PreTrainedTokenizerFast, docs: Sequence[str], block_size: int) -> torch.Tensor:
    """Concatenate documents, each ended by EOS, into (n_blocks, block_size) token ids."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(docs), add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(f"pretraining corpus has {len(stream)} tokens < block_size {block_size}")
    return torch.tensor(stream[: n_blocks * block_size]).view(n_blocks, block_size)


class _Blocks(torch.utils.data.Dataset):
    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        ids = self.blocks[i]
        return {"input_ids": ids, "labels": ids}


def new_model(cfg: PretrainConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=cfg.block_size, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        # No dropout: the point is to memorise facts, and RL log-probs must match sampling.
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        # GPT-2's tanh GELU as one fused op (same formula): "gelu_new" spells it out in
        # five elementwise ops, which cost a fifth of every forward pass at this size.
        activation_function="gelu_pytorch_tanh",
    )
    return GPT2LMHeadModel(config)


def _train(cfg: PretrainConfig, model, blocks: torch.Tensor, scratch: str, seed: int,
           compute: Resolved):
    args = TrainingArguments(
        output_dir=scratch, max_steps=cfg.steps,
        # pretrain.batch_size sequences per step over all ranks (the `bases` stage may be
        # launched on several), as in one process
        per_device_train_batch_size=per_device(cfg.batch_size, cfg.batch_size,
                                               "pretrain.batch_size")[0],
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps, lr_scheduler_type="cosine", weight_decay=0.01,
        logging_steps=max(1, cfg.steps // 50), **trainer_kwargs(compute, seed),
        dataloader_drop_last=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Blocks(blocks))
    return trainer, trainer.train()


def pretrain(cfg: PretrainConfig, docs: Sequence[str], tokenizer: PreTrainedTokenizerFast,
             out_dir: Path, seed: int, compute: Resolved) -> dict:
    """Train from scratch for `cfg.steps` steps and save a model directory; returns stats."""
    blocks = pack(tokenizer, docs, cfg.block_size)
    model = new_model(cfg, tokenizer, seed)
    with tempfile.TemporaryDirectory() as scratch:  # nothing but the final model is kept
        trainer, result = _train(cfg, model, blocks, scratch, seed, compute)
    if is_main_process():
        save_model(model, tokenizer, out_dir)
    barrier()  # every rank goes on to train from the saved model
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus_tokens": int(blocks.numel()),
        "train_loss": float(result.training_loss),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "train_seconds": float(result.metrics.get("train_runtime", 0.0)),
        "loss_curve": losses,
    }


def pretrain_on_world(world_dir: Path, cfg: PretrainConfig, seed: int, compute: Resolved,
                      out_dir: Path) -> dict:
    """The toy base model: a tokenizer over every question, answer and biography of the world
    in `world_dir` (so no prompt maps to [UNK]) and a GPT-2 pretrained on the biographies and
    the instruction QA, corpus order and weights seeded by `seed`; returns `pretrain`'s stats."""
    items = read_items(Path(world_dir) / "items.jsonl")
    bios = (Path(world_dir) / "biographies.txt").read_text().splitlines()
    tokenizer = build_tokenizer([it.question for it in items]
                                + [a for it in items for a in it.answers] + bios)
    instruct = [it for it in items if it.split == "instruct"]
    docs = corpus_documents(bios, instruct, cfg.qa_repeats, seed)
    return pretrain(cfg, docs, tokenizer, out_dir, seed, compute)
