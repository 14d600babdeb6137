from importlib import metadata

from recall.environment import PACKAGES, environment, environment_markdown, git_commit


def test_environment_names_every_package_the_results_depend_on():
    env = environment()
    for names in PACKAGES:
        key = names if isinstance(names, str) else names[0]
        assert env[key] != "not installed", key
    assert env["torch"] == metadata.version("torch")
    assert env["commit"] == git_commit() and len(env["commit"].removesuffix("-dirty")) == 40
    assert env["cpus"].endswith(f"of {__import__('os').cpu_count()}")


def test_commit_outside_git_is_unknown(tmp_path):
    assert git_commit(cwd=str(tmp_path)) == "unknown"


def test_markdown_header_lists_each_field_once():
    text = environment_markdown({"commit": "abc-dirty", "torch": "2.13.0", "device": "cpu: x"})
    assert text == "> **Environment.** commit `abc-dirty` · torch `2.13.0` · device `cpu: x`\n"


def test_dirty_means_source_or_params_differ_not_stage_outputs(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/m.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = git_commit(cwd=str(tmp_path))
    assert len(head) == 40
    (tmp_path / "metrics/m.json").unlink()  # what DVC does to an output before a stage runs
    assert git_commit(cwd=str(tmp_path)) == head
    (tmp_path / "params.yaml").write_text("a: 2\n")  # a `dvc exp run -S` variant
    assert git_commit(cwd=str(tmp_path)) == f"{head}-dirty"
