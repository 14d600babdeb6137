"""A bounded, retrying client for an OpenAI-compatible /v1/completions server (vLLM).

Shared by the LLM judge (answer grading) and the dedup verifier (containment verdicts).
Prompts that share every other field go out `batch_prompts` to one request (the completions
API takes a list of prompts): on the CPU toy judge that is ~9x the throughput of one prompt
per request (748 vs 81 prompts/s, measured). Requests go out concurrently under a cap, each with a timeout and jittered exponential
backoff on transport errors, 429 and 5xx. A 4xx is a bug in the request and is not retried.
A request still failing after its retries comes back as a `JudgeError` in its slot; callers
decide whether that is fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from typing import Callable, Sequence

from tqdm.auto import tqdm

from recall.config import JudgeConfig
from recall.judge.interface import JudgeError


def per_rank_concurrency(global_cap: int, world_size: int | None = None) -> int:
    """The global in-flight cap split evenly across training ranks (at least 1 each).

    >>> per_rank_concurrency(32, 3)
    10
    """
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    return max(1, global_cap // max(1, world))


class CompletionClient:
    def __init__(self, base_url: str, cfg: JudgeConfig, world_size: int | None = None,
                 stats: Counter | None = None):
        self.base_url = base_url.rstrip("/")
        self.cfg = cfg
        self.concurrency = per_rank_concurrency(cfg.max_concurrency, world_size)
        # calls (prompts sent), posts (HTTP requests), retries, unreachable
        self.stats = stats if stats is not None else Counter()
        self.max_in_flight = 0

    @contextlib.contextmanager
    def alone(self):
        """The whole global cap for a block in which this rank alone sends requests (the
        main process grading an evaluation while the other ranks wait)."""
        shared, self.concurrency = self.concurrency, max(1, self.cfg.max_concurrency)
        try:
            yield
        finally:
            self.concurrency = shared

    def complete_all(self, bodies: Sequence[dict], desc: str = "judge calls",
                     on_reply: Callable[[list[int], list], None] | None = None) -> list:
        """One reply text (or JudgeError) per request body, in order. `on_reply(indices,
        replies)` runs as each HTTP request finishes, so a caller can persist what came back
        before a later request fails or the process is killed."""
        if not bodies:
            return []
        batches = batch_bodies(bodies, self.cfg.batch_prompts)
        out: list = [None] * len(bodies)

        def done(k: int, reply) -> None:
            body, indices = batches[k]
            n = len(indices)
            if isinstance(reply, Exception):
                replies = [reply] * n
            elif len(reply) != n:
                replies = [JudgeError(f"server returned {len(reply)} choices for {n} prompts")] * n
            else:
                replies = list(reply)
            for i, r in zip(indices, replies):
                out[i] = r
            if on_reply is not None:
                on_reply(indices, replies)

        asyncio.run(self._all([b for b, _ in batches], desc, done))
        self.stats["unreachable"] += sum(isinstance(r, Exception) for r in out)
        return out

    async def _all(self, bodies: list[dict], desc: str, done: Callable[[int, object], None]):
        import httpx

        limit = asyncio.Semaphore(self.concurrency)
        in_flight = 0
        total = sum(len(b["prompt"]) for b in bodies)
        bar = tqdm(total=total, desc=desc, unit="call", disable=total < 256)

        async def one(client, k, body):
            nonlocal in_flight
            async with limit:
                in_flight += 1
                self.max_in_flight = max(self.max_in_flight, in_flight)
                try:
                    done(k, await self._post(client, body))
                finally:
                    in_flight -= 1
                    bar.update(len(body["prompt"]))

        async with httpx.AsyncClient(timeout=self.cfg.timeout_s) as client:
            await asyncio.gather(*(one(client, k, b) for k, b in enumerate(bodies)))
        bar.close()

    async def _post(self, client, body: dict):
        """One batched completion with retries; the reply texts or the last error."""
        import httpx

        error: Exception | None = None
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                delay = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                self.stats["retries"] += 1
                await asyncio.sleep(delay)
            try:
                self.stats["calls"] += len(body["prompt"])
                self.stats["posts"] += 1
                resp = await client.post(f"{self.base_url}/v1/completions", json=body)
                if resp.status_code >= 500 or resp.status_code == 429:
                    error = JudgeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    continue
                resp.raise_for_status()  # a 4xx is our bug: no retry
                choices = sorted(resp.json()["choices"], key=lambda c: c.get("index", 0))
                return [c["text"] for c in choices]
            except (httpx.TransportError, httpx.TimeoutException) as err:
                error = JudgeError(f"{type(err).__name__}: {err}")
        return error


def batch_bodies(bodies: Sequence[dict], size: int) -> list[tuple[dict, list[int]]]:
    """Consecutive bodies that differ only in `prompt`, merged `size` at a time into one body
    with a list of prompts; each with the indices of the bodies it carries.

    >>> [(b["prompt"], ix) for b, ix in batch_bodies(
    ...     [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "max_tokens": 2}], 4)]
    [(['a', 'b'], [0, 1]), (['c'], [2])]
    """
    if size < 1:
        raise ValueError(f"judge.batch_prompts must be >= 1, got {size}")
    out: list[tuple[dict, list[int]]] = []
    for i, body in enumerate(bodies):
        rest = {k: v for k, v in body.items() if k != "prompt"}
        last = out[-1] if out else None
        if (last is not None and len(last[1]) < size
                and {k: v for k, v in last[0].items() if k != "prompt"} == rest):
            last[0]["prompt"].append(body["prompt"])
            last[1].append(i)
        else:
            out.append(({**rest, "prompt": [body["prompt"]]}, [i]))
    return out
