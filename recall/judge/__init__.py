"""The judge: everything that decides whether an answer is correct.

interface (requests, verdicts, the TRL reward), rules (normalised match), prompts,
completions (the HTTP client), client (the LLM judge), cache (verdicts on disk), server (a
vLLM server's lifecycle), factory (the judge the params name), training (the toy judge)
and reliability (agreement with reference labels). Import the modules, not this package:
it re-exports nothing, so importing one part never loads the others.
"""
