"""The LLM judge: an OpenAI-compatible completions API (a vLLM server), made cheap and strict.

Per batch: the exact-match fast path answers what it can; the persistent cache answers what
was judged before; identical candidates are sent once; the rest go out concurrently under a
cap, each with a timeout and jittered retries. A reply is parsed against the prompt's exact
choices; anything else is an unparseable verdict (None), counted and never read as correct.
A server still unreachable after its retries raises `JudgeError` (evaluation) or yields
None verdicts (`on_unreachable="none"`, the GRPO reward) - never a silent 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from recall.config import JudgeConfig
from recall.judge.cache import model_identity, open_cache, verdict_key
from recall.judge.completions import CompletionClient
from recall.judge.interface import JudgeError, JudgeRequest, Verdict
from recall.judge.prompts import JUDGE_PROMPTS
from recall.judge.rules import exact_match, lacks_core_words


class LLMJudge:
    name = "llm"

    def __init__(self, cfg: JudgeConfig, base_url: str, model: str,
                 on_unreachable: str = "raise", world_size: int | None = None,
                 dedup: bool = True):
        if on_unreachable not in ("raise", "none"):
            raise ValueError(f"on_unreachable: expected 'raise' or 'none', got {on_unreachable!r}")
        self.cfg, self.model, self.on_unreachable = cfg, model, on_unreachable
        self.identity = model_identity(model)  # cache key and GRPO stamp: name + weights
        self.base_url = base_url.rstrip("/")
        self.prompt = JUDGE_PROMPTS[cfg.prompt]
        self.chat = _chat_tokenizer(cfg.tokenizer)
        self.cache = open_cache(cfg.cache)
        self.stats: Counter = Counter()  # requests, fast_path, cache_hits, calls, unparseable, ...
        self.client = CompletionClient(self.base_url, cfg, world_size, stats=self.stats)
        self.dedup = dedup  # off only to measure what dedup saves
        if not dedup and self.cache is not None:
            raise ValueError("dedup=False is for measuring the uncached cost; set judge.cache ''")

    def _key(self, r: JudgeRequest) -> str:
        version = f"{self.prompt.name}/{self.prompt.version}{'+chat' if self.chat else ''}"
        return verdict_key(self.identity, version, r.question, r.answers, r.candidate)

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.stats["requests"] += len(requests)
        out: list[Verdict | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            if self.cfg.fast_path and exact_match(r.answers, r.candidate):
                out[i] = Verdict(1, "fast_path")
                self.stats["fast_path"] += 1
            elif self.cfg.require_core_words and lacks_core_words(r.answers, r.candidate):
                out[i] = Verdict(0, "core_words")
                self.stats["core_words"] += 1
            else:
                pending.setdefault(self._key(r) if self.dedup else f"{self._key(r)}#{i}",
                                   []).append(i)
        cached = self.cache.get_many(pending) if self.cache is not None else {}
        for key, value in cached.items():
            hits = pending.pop(key)
            self.stats["cache_hits"] += len(hits)
            for i in hits:
                out[i] = Verdict(value, "cache")
        self.stats["deduplicated"] += sum(len(ix) - 1 for ix in pending.values())
        keys = list(pending)

        def settle(indices: list[int], replies: list) -> None:
            # Per HTTP request: its verdicts are cached at once, so a later failure (or a
            # killed pod) loses only the requests still in flight and a rerun resumes.
            fresh = []
            for k, reply in zip(indices, replies):
                verdict = self._verdict(reply)
                if verdict.value is not None:
                    fresh.append((keys[k], verdict.value, reply))
                for i in pending[keys[k]]:
                    out[i] = verdict
            if self.cache is not None:
                self.cache.put_many(fresh)

        self._ask_all([requests[pending[k][0]] for k in keys], settle)
        return out  # type: ignore[return-value]

    def _verdict(self, reply) -> Verdict:
        if isinstance(reply, Exception):  # counted in _ask_all
            return Verdict(None, f"unreachable: {reply}")
        value = self.prompt.parse(reply)
        if value is None:
            self.stats["unparseable"] += 1
            return Verdict(None, f"unparseable reply {reply!r}")
        return Verdict(value, "llm")

    def _ask_all(self, requests: list[JudgeRequest], settle) -> None:
        bodies = [{"model": self.model, "prompt": self._text(r), "max_tokens": 4,
                   "temperature": 0.0,
                   # A chat template already holds BOS (Llama); vLLM would add another.
                   "add_special_tokens": self.chat is None,
                   # Constrained to the prompt's choices where the server supports it (vLLM).
                   "structured_outputs": {"choice": list(self.prompt.choices)}}
                  for r in requests]
        replies = self.client.complete_all(bodies, on_reply=settle)
        failures = [r for r in replies if isinstance(r, Exception)]
        if failures and self.on_unreachable == "raise":
            kept = (f"the {len(replies) - len(failures)} that came back are in the verdict "
                    f"cache" if self.cache is not None else "judge.cache is off: nothing kept")
            raise JudgeError(f"LLM judge at {self.base_url} failed {len(failures)} of "
                             f"{len(replies)} requests after {self.cfg.retries} retries ({kept}); "
                             f"last error: {failures[-1]}")

    def _text(self, r: JudgeRequest) -> str:
        text = self.prompt.render(r.question, r.answers, r.candidate)
        if self.chat is None:
            return text
        return self.chat.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)

    @property
    def max_in_flight(self) -> int:
        return self.client.max_in_flight


def _chat_tokenizer(directory: str):
    """The judge's tokenizer when `directory` holds one with a chat template, else None."""
    if not directory:
        return None
    from transformers import AutoTokenizer

    from recall.prompts import has_chat_template

    tokenizer = AutoTokenizer.from_pretrained(directory)
    return tokenizer if has_chat_template(tokenizer) else None
