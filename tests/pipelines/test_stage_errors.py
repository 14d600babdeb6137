"""A known error ends a stage with one line on stderr, naming the file; --debug shows more."""

import subprocess
import sys

from conftest import copy_repo, micro_params_dict


def _split_on_latin1(tmp_path, *flags):
    data = micro_params_dict()
    data["data"].update(source="datasets", select=["mine"], datasets=[
        {"name": "mine", "format": "nq_open", "role": "test", "path": "data/external/mine.jsonl"}])
    env = copy_repo(tmp_path, data)
    bad = tmp_path / "data" / "external" / "mine.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_bytes('{"question": "où est la gare?", "answer": ["ici"]}\n'.encode("latin-1"))
    paths = ["--world", "data/world/items.jsonl", "--out", "data/splits/items.jsonl",
             "--metrics", "metrics/split.json"]
    return subprocess.run([sys.executable, "pipelines/split.py", *paths, *flags], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_latin1_file_gives_one_line(tmp_path):
    proc = _split_on_latin1(tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "split: error: data/external/mine.jsonl:1: not UTF-8: byte 0xf9 at column 16 (invalid "
        "start byte); expected UTF-8 text (a Latin-1 or Windows-1252 file? re-save it as "
        "UTF-8) (--debug for the traceback)"], proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    proc = _split_on_latin1(tmp_path, "--debug")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "recall.contract.ContractError: data/external/mine.jsonl:1: not UTF-8" in proc.stderr
