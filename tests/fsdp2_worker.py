"""One rank of tests/test_compute.py's FSDP2 check, run by `torchrun` over gloo on CPU.

accelerate 1.15 turns FSDP on only for accelerator devices (accelerate/state.py: the
`DistributedType.FSDP` switch sits under MULTI_GPU/MULTI_NPU/..., never MULTI_CPU), so the
Trainer's own multi-process CPU runs are DDP. This is the nearest path that shards on CPU:
torch's `fully_shard` (FSDP2, the wrapping accelerate applies on GPUs) over the same model,
driven through recall's own sharded code: the split, synced greedy evaluation
(`policy_completions`), the per-rank weight digests and a full state dict after an AdamW step.

    python -m torch.distributed.run --nproc_per_node 2 tests/fsdp2_worker.py MODEL ITEMS OUT
"""

import json
import pickle
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from recall.compute import is_main_process, weights_on_every_rank
from recall.evaluation import policy_completions
from recall.sampling import SamplingSettings


def main(model_dir: str, items_file: str, out_file: str) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    full_numel = sum(p.numel() for p in model.parameters())
    for block in model.transformer.h:
        fully_shard(block)
    fully_shard(model)
    local_numel = sum(p.to_local().numel() for p in model.parameters())
    items = pickle.loads(open(items_file, "rb").read())
    before = weights_on_every_rank(model)
    # A budget of ~2 prompts per generate call: several batches per rank, the shorter share
    # padded, so a missing pad or an unsynced decode would hang here.
    model.eval()
    completions, shares = policy_completions(model, tok, items,
                                             SamplingSettings(n=1, temperature=0.0, max_tokens=4),
                                             max_batch_tokens=64)
    model.train()
    batch = tok([it.question for it in items[:4]], return_tensors="pt", padding=True)
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    after = weights_on_every_rank(model)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                 cpu_offload=True))
    if is_main_process():
        with open(out_file, "w") as f:
            json.dump({"full_numel": full_numel, "local_numel": local_numel,
                       "before": before, "after": after, "completions": completions,
                       "shares": shares, "state_dict_keys": len(full),
                       "state_dict_numel": sum(t.numel() for t in full.values())}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
