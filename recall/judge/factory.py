"""The judge the params name, served for as long as the caller needs it."""

from __future__ import annotations

import contextlib
from typing import Iterator

from recall.judge.client import LLMJudge
from recall.judge.rules import RuleJudge
from recall.judge.server import serve_judge, shared_server


@contextlib.contextmanager
def open_judge(cfg, on_unreachable: str = "raise", compute=None) -> Iterator[object]:
    """The judge that `cfg` (a JudgeConfig) names, with a vLLM server for as long as needed
    (on the GPUs, as `compute`, the params' ComputeConfig, says).

    rule: the normalised-match judge. llm: `cfg.base_url` if given, else the server that
    `run_with_judge` started, else `cfg.model` served here for the duration of the block.
    """
    if cfg.backend == "rule":
        yield RuleJudge()
    elif cfg.base_url:
        yield LLMJudge(cfg, cfg.base_url, cfg.model, on_unreachable=on_unreachable)
    elif shared := shared_server(cfg.model):
        yield LLMJudge(cfg, shared, cfg.model, on_unreachable=on_unreachable)
    else:
        with serve_judge(cfg.model, compute=compute) as base_url:
            yield LLMJudge(cfg, base_url, cfg.model, on_unreachable=on_unreachable)
