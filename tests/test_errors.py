"""A known error ends a stage or the CLI with one line on stderr and exit code 2."""

import subprocess
import sys

import pytest
from conftest import ROOT

from recall.config import ConfigError
from recall.contract import ContractError
from recall.errors import EXIT_CODE, run_stage


def _fail(err):
    def main():
        raise err
    return main


def test_known_error_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pipelines/split.py"])
    monkeypatch.delenv("RECALL_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        run_stage(_fail(ContractError("a.jsonl:3: field 'id' is empty;\nexpected text")))
    assert stop.value.code == EXIT_CODE == 2
    assert capsys.readouterr().err == ("split: error: a.jsonl:3: field 'id' is empty; expected "
                                       "text (--debug for the traceback)\n")


def test_debug_flag_or_variable_reraises_and_other_errors_pass_through(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pipelines/dedup.py", "--debug"])
    with pytest.raises(ConfigError):
        run_stage(_fail(ConfigError("params.yaml: key 'x' must be >= 1")))
    assert sys.argv == ["pipelines/dedup.py"]  # the stage's own argparse never sees it
    monkeypatch.setenv("RECALL_DEBUG", "1")
    with pytest.raises(ContractError):
        run_stage(_fail(ContractError("x")))
    monkeypatch.delenv("RECALL_DEBUG")
    with pytest.raises(KeyError):  # a bug is not a known error: its traceback stays
        run_stage(_fail(KeyError("k")))
    assert run_stage(lambda: 7) == 7


def test_cli_bad_params_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text((ROOT / "params.yaml").read_text().replace("  top_k: 10 ", "  top_k: -5 ", 1))
    proc = subprocess.run([sys.executable, "-m", "recall.cli", "plan", "--params", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"cli: error: {bad}: key 'dedup.top_k' must be >= 1, got -5 (--debug for the traceback)"]
