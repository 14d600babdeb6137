"""Under CI=true a guarded end-to-end test that skips fails the run; other skips stay skips."""

import os
import subprocess
import sys

from conftest import ROOT

CASES = """
import pytest

@pytest.mark.ci_required
@pytest.mark.skipif(True, reason="no data here")
def test_guarded_skipif():
    pass

@pytest.fixture
def needs_data():
    pytest.skip("no data in the fixture")

@pytest.mark.ci_required
def test_guarded_fixture_skip(needs_data):
    pass

@pytest.mark.skipif(True, reason="pinned versions differ")
def test_unguarded_skip():
    pass

@pytest.mark.ci_required
def test_guarded_that_runs():
    assert 1 + 1 == 2
"""


def _pytest(path, ci: str | None):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_guard", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "-q", "-rfs", "-o", "addopts=",
                           "-o", "markers=ci_required", str(path)],
                          cwd=path.parent, env={**env, "PYTHONPATH": str(ROOT / "tests")},
                          capture_output=True, text=True, timeout=120)


def test_a_guarded_skip_fails_under_ci_and_only_there(tmp_path):
    cases = tmp_path / "test_cases.py"
    cases.write_text(CASES)
    local = _pytest(cases, None)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 3 skipped" in local.stdout
    ci = _pytest(cases, "true")
    assert ci.returncode == 1, ci.stdout
    assert "1 passed, 1 skipped, 2 errors" in ci.stdout  # a setup-phase failure is an error
    assert ("test_cases.py::test_guarded_skipif skipped under CI=true (Skipped: no data here); "
            "CI must run it") in ci.stdout
    assert "test_guarded_fixture_skip skipped under CI=true (Skipped: no data in the fixture)" \
        in ci.stdout
    assert "SKIPPED [1] test_cases.py" in ci.stdout and "pinned versions differ" in ci.stdout


# The tests CI exists to run end to end, and what they need from the machine.
GUARDED = {"pipelines/test_paper_profile.py": "../shared/data",
           "pipelines/test_leakage_guard.py": "../shared/data",
           "pipelines/test_cluster_pods.py": "root and CAP_SYS_ADMIN",
           "pipelines/test_multinode_pods.py": "root and CAP_SYS_ADMIN",
           "pipelines/test_sweep_pods.py": "root and CAP_SYS_ADMIN",
           "test_mlflow_ui.py": "chromium"}


def test_the_suite_applies_the_guard_to_the_tests_ci_exists_for(request):
    import ci_guard
    import conftest

    assert conftest.pytest_runtest_makereport is ci_guard.pytest_runtest_makereport
    tests = ROOT / "tests"
    items = [it for it in request.session.items if it.path.is_relative_to(tests)]
    guarded = [it for it in items if it.path.relative_to(tests).as_posix() in GUARDED]
    assert all(it.get_closest_marker("ci_required") for it in guarded), \
        [it.nodeid for it in guarded if not it.get_closest_marker("ci_required")]
    # Every test that reads the real files is guarded, wherever it lives.
    readers = [it for it in items if any(m.name == "skipif" and "shared" in str(m.kwargs)
                                         for m in it.iter_markers())]
    assert readers and all(it.get_closest_marker("ci_required") for it in readers)
