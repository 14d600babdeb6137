"""CI must not pass by skipping what it exists to run.

The end-to-end tests whose preconditions .ci/run provides (../shared/data, root for the pod
harness, chromium) carry the `ci_required` mark; under CI=true (.ci/run sets it) their skip
is reported as a failure that names why. `gpu` tests and version-pin skips stay skips.
A pytest plugin of its own (tests/conftest.py imports the hook) so that a test can run it
on a file of its own (`-p ci_guard`).
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" \
            and item.get_closest_marker("ci_required") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} skipped under CI=true ({reason}); CI must run it: "
                           f"give it what it needs (.ci/run checks ../shared/data and root) "
                           f"or unset CI")
