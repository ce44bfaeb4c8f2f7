"""Tracker names resolve through entry points, deterministically, with errors that name things."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trackers.backends.fsspec import FsspecTracker
from trackers.env import parse_tracker_names, strict_from_env, validate_tracker_name
from trackers.errors import TrackerConfigError, TrackerNotFoundError
from trackers.registry import create_tracker, resolve_factory, tracker_specs


def test_fsspec_is_ours_although_torchx_registers_it_too() -> None:
    spec = tracker_specs()["fsspec"]
    assert spec.target == "trackers.backends.fsspec:create_tracker"
    assert spec.distribution.startswith("torchx-lineage")


def test_our_entry_point_is_found_through_importlib_metadata() -> None:
    # Discovered through the installed distribution's entry points, not through an import.
    assert tracker_specs()["lineage_fsspec"].target == "trackers.backends.fsspec:create_tracker"


def test_unknown_tracker_lists_the_known_ones() -> None:
    with pytest.raises(TrackerNotFoundError, match=r"unknown tracker 'nosuch'.*fsspec"):
        resolve_factory("nosuch")


@pytest.mark.parametrize("name", ["my-tracker", "1abc", "a.b", "", "a b", "é"])
def test_names_that_cannot_be_env_var_names_are_refused(name: str) -> None:
    with pytest.raises(TrackerConfigError, match=r"\[A-Za-z\]\[A-Za-z0-9_\]\*"):
        validate_tracker_name(name)


def test_tracker_names_are_split_deduplicated_and_validated() -> None:
    assert parse_tracker_names(" fsspec, mlflow ,,fsspec") == ["fsspec", "mlflow"]
    with pytest.raises(TrackerConfigError, match="TORCHX_TRACKERS='fsspec,my-x'"):
        parse_tracker_names("fsspec,my-x")


def test_config_errors_name_the_origin_and_redact_secrets() -> None:
    with pytest.raises(TrackerConfigError) as info:
        create_tracker(
            "fsspec", "nosuch://user:hunter2@host/x", origin="TORCHX_TRACKER_FSSPEC_CONFIG"
        )
    message = str(info.value)
    assert message.startswith("TORCHX_TRACKER_FSSPEC_CONFIG=")
    assert "hunter2" not in message


def test_create_tracker_builds_our_backend(tmp_path: Path) -> None:
    assert isinstance(create_tracker("fsspec", str(tmp_path), origin="x"), FsspecTracker)


@pytest.mark.parametrize(
    ("raw", "strict"), [("", False), ("0", False), ("1", True), ("TRUE", True), ("off", False)]
)
def test_strict_flag_values(raw: str, strict: bool) -> None:
    assert strict_from_env({"TORCHX_TRACKER_STRICT": raw}) is strict


def test_strict_flag_rejects_garbage() -> None:
    with pytest.raises(TrackerConfigError, match="TORCHX_TRACKER_STRICT='maybe'"):
        strict_from_env({"TORCHX_TRACKER_STRICT": "maybe"})


def test_importing_the_packages_imports_no_heavy_optional_dependency() -> None:
    code = (
        "import sys, trackers, launcher_plugin, trackers.backends.fsspec\n"
        "from trackers import AppRun\n"
        "heavy = {'mlflow', 'boto3', 'torch', 'kubernetes'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
