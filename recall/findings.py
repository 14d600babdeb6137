"""The paper's five findings, each judged from its item-level test (recall.claims).

A finding is "reproduced" when its test's 95% interval lies on the paper's side, "not
reproduced" when it lies on the other side, and "inconclusive" when it covers the boundary;
a finding whose test cannot be formed here says so. Means alone never decide a verdict.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from recall.latent import powered
from recall.significance import ALPHA, verdict

LABELS = {"base": "base (greedy)", "majority": "majority vote", "grpo": "GRPO", "rloo": "RLOO",
          "sft": "SFT (gold)", "sft_known": "SFT, known facts only (control)", "dpo": "DPO",
          "rft": "online RFT"}
MOST = 0.5  # "most of the gain": the paper's inaccessible subset recovers ~0.83 of it


def ci_text(test: Mapping, fmt: str = "{:+.3f}") -> str:
    """'+0.030 [+0.012, +0.048], p=0.002' from a paired bootstrap result."""
    low, high = test["ci"]
    return (f"{fmt.format(test['diff'])} [{fmt.format(low)}, {fmt.format(high)}], "
            f"p={test['p']:.3g}")


def _overall(verdicts: Sequence[str]) -> str:
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in verdicts else "inconclusive"


def against_baselines(tests: Mapping[str, Mapping]) -> str:
    others = [m for m in ("sft", "dpo", "rft") if m in tests]
    parts = {m: verdict(tests[m]["vs_reference"]) for m in others}
    return ("1. **RL vs SFT, DPO and RFT on held-out facts.** GRPO minus each, item-level paired "
            "bootstrap over test items (seed means): "
            + "; ".join(f"{LABELS[m]} {ci_text(tests[m]['vs_reference'])} ({parts[m]})"
                        for m in others)
            + f". **{_overall(list(parts.values())).capitalize()}.**")


def against_majority(test: Mapping, k: int) -> str:
    return (f"2. **RL vs majority vote.** GRPO minus majority vote over {k} base samples, per "
            f"item: {ci_text(test)}. **{verdict(test).capitalize()}.**")


def repair_trend_line(trend: Mapping, rates: Mapping[str, float | None],
                      wrong: Mapping[str, int]) -> str:
    shown = ", ".join(f"{b}: {r:.2f} (n={wrong[b]})" for b, r in rates.items()
                      if r is not None and wrong[b])
    head = ("3. **Repair rate rises with accessibility.** GRPO repair rate per bin (seed means) "
            f"{shown}. ")
    if trend["tau"] is None:
        return head + "Fewer than two accessibility levels among base-wrong items: not testable here."
    test = (f"Kendall's tau between pre-RL correct count and repair over the "
            f"{trend['items']} base-wrong test items: {trend['tau']:+.3f}, p={trend['p']:.3g}. ")
    if trend["p"] < ALPHA:
        return head + test + ("**Reproduced.**" if trend["tau"] > 0 else "**Not reproduced.**")
    return head + test + "**Inconclusive.**"


def sharpening(pk_base: Mapping[int, float], pk_after: Mapping[int, float],
               first: Mapping, last: Mapping, k_last: int, greedy_after: float) -> str:
    k_match = next((k for k in sorted(pk_base) if pk_base[k] >= greedy_after), None)
    match = (f"the smallest k whose pre-RL pass@k ({pk_base[k_match]:.3f}) reaches post-RL "
             f"greedy ({greedy_after:.3f}) is {k_match}" if k_match else
             f"post-RL greedy ({greedy_after:.3f}) exceeds every pre-RL pass@k")
    text = (f"4. **RL sharpens what sampling reaches, without widening it.** Pre → post GRPO "
            f"pass@1 {pk_base[1]:.3f} → {pk_after[1]:.3f}, pass@{k_last} "
            f"{pk_base[k_last]:.3f} → {pk_after[k_last]:.3f}; {match}. Paired bootstrap over "
            f"items: pass@1 {ci_text(first)}, pass@{k_last} {ci_text(last)}. ")
    if verdict(last) == "reproduced":
        return text + f"**Not reproduced**: RL widened pass@{k_last}."
    if verdict(first) == "reproduced":
        return text + (f"**Reproduced**: pass@1 rises and pass@{k_last} does not "
                       "(its interval is not above 0).")
    return text + "**Inconclusive**: pass@1 does not rise clearly."


def attribution_line(shares: Mapping[str, Mapping], judged_on: str | None,
                     expected: Mapping[str, float] | None = None,
                     min_expected: float = 0.0) -> str:
    """Finding 5: the share of the full-data gain that GRPO on one partition recovers,
    judged on `judged_on` (the world's stored-but-inaccessible facts when there is ground
    truth, else the paper's accessibility-0 partition). `expected`: correct rollouts each
    partition's run could expect from the base's p(gold) (recall.latent); a verdict against
    the paper on fewer than `min_expected` of them is "underpowered"."""
    def one(name: str) -> str:
        s = shares[name]
        ci = (f" [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]" if s["ci"] else " [no interval]")
        share = "n/a" if s["share"] is None else f"{s['share']:.2f}"
        return f"{name} {share}{ci}"

    text = ("5. **Attribution.** Share of the full-data GRPO gain recovered by GRPO on one "
            "partition at matched size (95% interval over resampled test items): "
            + "; ".join(one(n) for n in shares) + ". The paper's inaccessible@128 subset "
            "recovers ~0.83. ")
    if judged_on is None or judged_on not in shares:
        return text + "**Not testable here**: no inaccessible partition was run."
    events = None if expected is None else expected.get(judged_on)
    if events is not None:
        text += (f"From the base's p(gold), the {judged_on} run could expect {events:.1f} "
                 f"correct rollouts (fewer than {min_expected:g}: underpowered). ")
    ci = shares[judged_on]["ci"]
    judged = f"judged on {judged_on}"
    if ci is None:
        found, why = "inconclusive", ("the full-data gain is not above 0 in enough resamples "
                                      "for a share of it to be defined")
    elif ci[0] >= MOST:
        found, why = "reproduced", f"{judged}: it recovers most of the gain"
    elif ci[1] < MOST:
        found, why = "not reproduced", f"{judged}: it recovers less than half of the gain"
    else:
        found, why = "inconclusive", f"{judged}: the interval covers one half"
    final = powered(found, events, min_expected)
    if final != found:
        why = (f"it would read {found} ({why}), but GRPO could not be expected to see the "
               "right answer often enough to learn from it")
    return text + f"**{final.capitalize()}** ({why})."


def controls(table: Mapping, tests: Mapping[str, Mapping], known_vs_all: Mapping | None) -> list[str]:
    """The organism's controls beside the findings: SFT on the facts the world stored
    against SFT on all, right→wrong breaks, and the second RL algorithm."""
    from recall.report import plus_minus

    lines = []
    if known_vs_all is not None:
        lines.append("- **Control: SFT on stored facts only** minus SFT on all RL-train facts, "
                     f"per test item: {ci_text(known_vs_all)}. Does training on facts the model "
                     "was never shown cost held-out accuracy? "
                     f"{verdict(known_vs_all).capitalize()} (interval above 0: yes).")
    breaks = [m for m in LABELS if isinstance(table.get(m), dict) and "broken_rate" in table[m]]
    lines.append("- **Right→wrong breaks** (share of base-right test items): "
                 + ", ".join(f"{LABELS[m]} {plus_minus(table[m]['broken_rate'])}" for m in breaks)
                 + ".")
    if "rloo" in tests:
        rloo = tests["rloo"]
        lines.append(f"- **Second RL algorithm** (RLOO, standing in for PPO): gain over base "
                     f"{ci_text(rloo['vs_base'])} ({verdict(rloo['vs_base'])}); GRPO − RLOO "
                     f"{ci_text(rloo['vs_reference'])}.")
    return lines
