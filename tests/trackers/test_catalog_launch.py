"""The catalog's launch fields: a launch record's component and launch time, per run."""

from __future__ import annotations

import json

from trackers.backends.catalog import Catalog, CatalogEntry, launch_entry
from trackers.ids import record_name

RUN = "local_cwd://torchx/train-1"


def test_the_newest_launch_record_names_the_component_whatever_order_segments_merge_in() -> None:
    first, second = record_name(), record_name()
    older = launch_entry({"launch.component": "dist.ddp", "launch.time": "2026-01-02"}, first)
    newer = launch_entry({"launch.component": "dist.spmd", "launch.time": "2026-01-03"}, second)
    assert older is not None and newer is not None
    for pair in ((older, newer), (newer, older)):
        merged = Catalog()
        for entry in pair:
            merged.merge_json(Catalog({RUN: entry}).encode(), "segment")
        assert merged.runs[RUN].component == ("dist.spmd", second)
        assert merged.runs[RUN].start == 1767312000.0  # the earliest launch: 2026-01-02 UTC


def test_metadata_without_a_component_is_no_launch_record() -> None:
    assert launch_entry({"launch.time": "2026-01-02", "lr": 0.1}, record_name()) is None
    assert launch_entry({"launch.component": 7}, record_name()) is None
    entry = launch_entry({"launch.component": "x", "launch.time": "not a time"}, record_name())
    assert entry is not None and entry.start is None and entry.component is not None


def test_a_malformed_component_in_a_stored_catalog_is_ignored() -> None:
    for bad in (["x"], ["x", 1], "x", [None, "name"], {"component": "x"}):
        entry = CatalogEntry.from_json({"component": bad, "start": 5.0})
        assert entry.component is None and entry.start == 5.0
    body = {"version": 1, "runs": {RUN: {"component": ["x", "n"], "extra": True}}}
    catalog = Catalog()
    catalog.merge_json(json.dumps(body).encode(), "catalog")
    assert catalog.runs[RUN].component == ("x", "n")


def test_the_newest_record_setting_the_user_wins_whatever_order_segments_merge_in() -> None:
    first, second = record_name(), record_name()
    launched = launch_entry({"launch.component": "dist.ddp", "launch.user": "alice"}, first)
    relabelled = launch_entry({"launch.user": "bob", "lr": 0.1}, second)
    assert launched is not None and relabelled is not None
    assert relabelled.component is None and relabelled.start is None
    for pair in ((launched, relabelled), (relabelled, launched)):
        merged = Catalog()
        for entry in pair:
            merged.merge_json(Catalog({RUN: entry}).encode(), "segment")
        assert merged.runs[RUN].user == ("bob", second)
        assert merged.runs[RUN].component == ("dist.ddp", first)


def test_a_launch_record_naming_no_user_says_so_in_the_catalog() -> None:
    """A null user, not a missing one: the entry is known whole (``launch_known``)."""
    name = record_name()
    for metadata in ({"launch.component": "x"}, {"launch.component": "x", "launch.user": 7}):
        entry = launch_entry(metadata, name)
        assert entry is not None and entry.user == (None, name)
        stored = CatalogEntry.from_json(json.loads(json.dumps(entry.to_json())))
        assert stored.user == (None, name)
    assert launch_entry({"lr": 0.1}, name) is None


def test_a_malformed_user_in_a_stored_catalog_is_ignored() -> None:
    for bad in (["x"], ["x", 1], "x", [3, "name"], {"user": "x"}):
        entry = CatalogEntry.from_json({"user": bad, "component": ["c", "n"]})
        assert entry.user is None and entry.component == ("c", "n")
