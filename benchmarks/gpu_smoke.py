"""The paper profile's micro run on a GPU: bf16, vLLM rollouts (TRL colocate), the vLLM
evaluation engine; prints peak training memory and evaluation samples/s.

    bash scripts/gpu_smoke.sh            # on a CUDA machine
    bash scripts/gpu_smoke.sh --dry-run  # anywhere: builds the inputs and checks the plan

It runs `recall serve-judge -- dvc repro train@grpo` in a scratch copy of the repository,
with params-paper.yaml at micro scale (recall.micro_model.MICRO_PAPER_SCALE) and
compute.device cuda. The dry run stops before any training: it builds the micro models
and data, writes the params, and runs `recall plan` on them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"


def gpu_params(inputs: Path, dry_run: bool) -> dict:
    from recall.micro_model import micro_paper_params

    extra = {"compute": {"device": "cpu" if dry_run else "cuda", "precision": "auto"},
             "rollout": {"vllm": "none" if dry_run else "colocate"}}
    return micro_paper_params(ROOT / "params-paper.yaml", inputs, extra)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--keep", type=Path, help="work here instead of a temporary directory")
    args = ap.parse_args()
    from recall.micro_model import micro_paper_inputs, scratch_repo

    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        (work / "inputs").mkdir(parents=True, exist_ok=True)
        (work / "repo").mkdir(exist_ok=True)
        inputs = micro_paper_inputs(work / "inputs", SHARED / "nq_open/NQ-open.dev.jsonl",
                                    SHARED / "simpleqa/simple_qa_test_set.csv")
        scratch_repo(ROOT, work / "repo", gpu_params(inputs, args.dry_run))
        plan = subprocess.run(["recall", "plan"], cwd=work / "repo", text=True)
        if plan.returncode or args.dry_run:
            print(f"gpu_smoke: dry run {'passed' if not plan.returncode else 'FAILED'}")
            return plan.returncode
        start = time.perf_counter()
        run = subprocess.run(["recall", "serve-judge", "--", "dvc", "repro", "train@grpo"],
                             cwd=work / "repo")
        if run.returncode:
            return run.returncode
        sample = json.loads((work / "repo/metrics/sample_base.json").read_text())
        grpo = json.loads((work / "repo/metrics/train_grpo.json").read_text())["seed0"]
        print(json.dumps({"wall_s": round(time.perf_counter() - start, 1),
                          "engine": sample["engine"],
                          "base_samples_per_second": round(sample["samples_per_second"], 1),
                          "grpo_steps": grpo["steps"],
                          "peak_gpu_gib_training": grpo.get("peak_gpu_gib_training")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
