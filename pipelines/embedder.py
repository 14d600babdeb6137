"""Stage `embedder`: the sentence-transformers model of dense dedup retrieval, in models/embedder.

    dvc repro embedder   # dvc.yaml's cmd passes every input and output path

`models.embedder.source: hub` stages the pinned revision (paper: all-MiniLM-L6-v2, as a
stand-in for the paper's unnamed embedder); `local` copies a directory; `none` (toy: TF-IDF
retrieval) leaves an empty directory that records it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recall.config import load_params
from recall.errors import run_stage
from recall.staging import stage_logged
from recall.tracking import stage_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    params = load_params(args.params)
    with stage_run(params, "embedder"):
        print(json.dumps(stage_logged("embedder", params.models.embedder, args.out)))


if __name__ == "__main__":
    run_stage(main)
