"""Settings shared by the whole test suite."""

from __future__ import annotations

import functools
from importlib import metadata

import pytest
from hypothesis import settings

# CI and developers share small, busy machines: a per-example deadline would turn a slow moment
# into a failure that has nothing to do with the code under test.
settings.register_profile("autodiff-course", deadline=None)
settings.load_profile("autodiff-course")

REPORTED_PACKAGES = ("numpy", "matplotlib", "nbgrader", "nbclient", "ipykernel", "hypothesis")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "notebooks: runs course notebooks or nbgrader (slow); skip with -m 'not notebooks'"
    )
    config.addinivalue_line(
        "markers", "sandbox: needs the grading sandbox (bubblewrap); skipped, saying why, where it cannot start"
    )


@functools.cache
def sandbox_problem() -> str | None:
    """Why the grading sandbox cannot start here (asked once per run), or None."""
    from autodiff_ref.grading.sandbox import sandbox_problem

    return sandbox_problem()


def pytest_collection_modifyitems(config, items):
    needs_sandbox = [item for item in items if item.get_closest_marker("sandbox")]
    if needs_sandbox and sandbox_problem():
        reason = (
            "the grading sandbox cannot start here, so the tests of what it keeps from student code "
            f"do not run. To run them, install bubblewrap (as root: apt-get install bubblewrap). {sandbox_problem()}"
        )
        for item in needs_sandbox:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_header(config):
    versions = []
    for package in REPORTED_PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return "packages: " + ", ".join(versions)
