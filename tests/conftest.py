"""Settings shared by the whole test suite."""

from __future__ import annotations

from importlib import metadata

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


def pytest_report_header(config):
    versions = []
    for package in REPORTED_PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return "packages: " + ", ".join(versions)
