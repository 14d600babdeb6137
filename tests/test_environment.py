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
