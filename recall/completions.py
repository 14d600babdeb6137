"""A bounded, retrying client for an OpenAI-compatible /v1/completions server (vLLM).

Shared by the LLM judge (answer grading) and the dedup verifier (containment verdicts):
requests go out concurrently under a cap, each with a timeout and jittered exponential
backoff on transport errors, 429 and 5xx. A 4xx is a bug in the request and is not retried.
A request still failing after its retries comes back as a `JudgeError` in its slot; callers
decide whether that is fatal.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from typing import Sequence

from tqdm.auto import tqdm

from recall.config import JudgeConfig
from recall.judge import JudgeError


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
        self.stats = stats if stats is not None else Counter()  # calls, retries, unreachable
        self.max_in_flight = 0

    def complete_all(self, bodies: Sequence[dict], desc: str = "judge calls") -> list:
        """One reply text (or JudgeError) per request body, in order."""
        if not bodies:
            return []
        replies = asyncio.run(self._all(list(bodies), desc))
        self.stats["unreachable"] += sum(isinstance(r, Exception) for r in replies)
        return replies

    async def _all(self, bodies: list[dict], desc: str) -> list:
        import httpx

        limit = asyncio.Semaphore(self.concurrency)
        in_flight = 0
        bar = tqdm(total=len(bodies), desc=desc, unit="call", disable=len(bodies) < 256)

        async def one(client, body):
            nonlocal in_flight
            async with limit:
                in_flight += 1
                self.max_in_flight = max(self.max_in_flight, in_flight)
                try:
                    return await self._post(client, body)
                finally:
                    in_flight -= 1
                    bar.update()

        async with httpx.AsyncClient(timeout=self.cfg.timeout_s) as client:
            replies = await asyncio.gather(*(one(client, b) for b in bodies))
        bar.close()
        return replies

    async def _post(self, client, body: dict):
        """One completion with retries; the reply text or the last error."""
        import httpx

        error: Exception | None = None
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                delay = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                self.stats["retries"] += 1
                await asyncio.sleep(delay)
            try:
                self.stats["calls"] += 1
                resp = await client.post(f"{self.base_url}/v1/completions", json=body)
                if resp.status_code >= 500 or resp.status_code == 429:
                    error = JudgeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    continue
                resp.raise_for_status()  # a 4xx is our bug: no retry
                return resp.json()["choices"][0]["text"]
            except (httpx.TransportError, httpx.TimeoutException) as err:
                error = JudgeError(f"{type(err).__name__}: {err}")
        return error
