"""The MLflow UI opens on the training runs, checked in a real headless browser.

Two variants are tracked the way stages track them; `recall ui` serves the store with the
real MLflow server; Debian's chromium renders the links it prints. MLflow 3.17 opens an
experiment on the GenAI overview unless the link says otherwise, which is checked too, so a
UI that changes that rule fails here instead of silently changing what researchers see.
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import mlflow
import pytest
from conftest import ROOT

from recall.judge.server import free_port, wait_healthy
from recall.tracking import log_to_parent, stage_run

pytestmark = [pytest.mark.slow, pytest.mark.ci_required,
              pytest.mark.skipif(shutil.which("chromium") is None,
                                 reason="needs Debian's chromium (.ci/run installs it)")]


def render_text(url: str, profile) -> str:
    """The page's visible text after its scripts ran, from a fresh browser profile."""
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={profile}", "--window-size=1400,900",
                          "--virtual-time-budget=15000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    dom = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


@pytest.fixture
def ui(micro_params, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    for variant, acc in (("reward-judge", 0.4), ("reward-exact", 0.3)):
        monkeypatch.setenv("DVC_EXP_NAME", variant)
        with stage_run(micro_params, "analyze") as run:
            log_to_parent(run, {"test.grpo": acc, "study.minutes": 12.5})
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    out = tmp_path / "ui.out"
    with out.open("w") as fh:
        # its own session: the server's workers stop with it
        proc = subprocess.Popen([sys.executable, "-m", "recall.cli", "--params",
                                 str(ROOT / "params.yaml"), "ui", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=fh, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, 120, "recall ui")
        links = re.findall(r"http://127\.0\.0\.1:\d+/#/\S+", out.read_text())
        assert len(links) == 2, out.read_text()
        yield links[0], links[1], port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_printed_links_open_on_training_runs_and_the_compare_view(ui, tmp_path):
    runs, compare, port = ui
    page = render_text(runs, tmp_path / "profile-a")
    assert page.startswith("Runs - Experiment"), page[:300]
    # the two variants' parent runs (each with its stage run nested under it)
    assert "reward-judge" in page and "reward-exact" in page and "4 matching runs" in page
    # the shared view's columns: the headline metrics with their values, not Dataset/Source
    assert "viewStateShareKey=recall-headline" in runs
    assert "test.grpo" in page and "study.minutes" in page and "12.5" in page, page[:2000]
    assert "0.4" in page and "0.3" in page
    page = render_text(compare, tmp_path / "profile-b")
    assert "Comparing 2 Runs from 1 Experiment" in page and "test.grpo" in page


def test_without_the_link_parameter_mlflow_opens_on_the_genai_overview(ui, tmp_path):
    runs, _, port = ui
    experiment = re.search(r"experiments/(\w+)", runs).group(1)
    page = render_text(f"http://127.0.0.1:{port}/#/experiments/{experiment}", tmp_path / "p")
    assert page.startswith("Overview - Experiment") and "Traces" in page, page[:300]
    # the experiment is tagged as model training all the same
    assert mlflow.MlflowClient().get_experiment(experiment).tags["mlflow.experimentKind"] == \
        "custom_model_development"
