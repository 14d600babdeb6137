"""Screenshot MLflow's compare view of the two newest variants, as `recall ui` links it.

    python scripts/mlflow_screenshot.py [--params params.yaml] [--out docs/mlflow_compare.png]

Serves the tracking store (MLFLOW_TRACKING_URI or params' tracking.uri) with the real
`mlflow server`, and renders the compare link in Debian's headless chromium. The README's
screenshot comes from here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from recall.config import load_params
from recall.judge.server import free_port, wait_healthy
from recall.tracking import compare_url, tracking_uri, variant_runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", type=Path, default=Path("docs/mlflow_compare.png"))
    args = ap.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("mlflow_screenshot: needs Debian's chromium (apt-get install chromium)")
    params = load_params(args.params)
    store = tracking_uri(params)
    experiment, variants = variant_runs(store, params.experiment.name)
    if len(variants) < 2:
        sys.exit(f"mlflow_screenshot: {len(variants)} variant(s) in {store}; run a "
                 "`dvc exp run -S ...` variant first")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                               store, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, 120, "mlflow server")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", f"--user-data-dir={profile}",
                            "--window-size=1400,1000", "--virtual-time-budget=20000",
                            f"--screenshot={args.out.resolve()}",
                            compare_url(f"http://127.0.0.1:{port}", experiment, variants[:2])],
                           check=True, capture_output=True, timeout=180)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"mlflow_screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
