"""Run inside the s3fs virtualenv (see ``tests/s3/support.py``): read or write a store on S3
through s3fs - with our fsspec backend and with TorchX 0.7.0's own ``FsspecTracker`` - and print
what was read as JSON on stdout.

Usage: ``python s3fs_side.py REQUEST_JSON`` where the request is
``{"url": "s3://bucket/prefix", "endpoint": "http://127.0.0.1:PORT", "actions": [...]}`` and each
action is one of

* ``{"do": "dump", "runs": [...], "parent": RUN}``: what both readers see;
* ``{"do": "torchx_write", "run": RUN, "source": SRC, "artifact": NAME, "metadata": {...}}``:
  TorchX's tracker records metadata and a source;
* ``{"do": "ours_write", "run": RUN, "source": SRC, "artifact": NAME, "metadata": {...}}``:
  our fsspec backend does the same;
* ``{"do": "sources", "run": RUN}``: ``sources()`` of RUN by a new tracker of ours, as
  ``[[source, artifact name], ...]``;
* ``{"do": "torchx_runs", "runs": [...], "sources": {RUN: SRC}}``: TorchX's tracker writes one
  metadata record into each run (16 at a time) and a ``model`` source where ``sources`` names one.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from trackers.backends.fsspec import create_tracker


def ours(url: str, endpoint: str) -> Any:
    return create_tracker(json.dumps({"url": url, "storage_options": {"endpoint_url": endpoint}}))


def torchx(url: str, endpoint: str) -> Any:
    fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
    return TorchxFsspecTracker(fs, url.removeprefix("s3://"))


def dump(url: str, endpoint: str, runs: list[str], parent: str) -> dict[str, Any]:
    mine, theirs = ours(url, endpoint), torchx(url, endpoint)
    out: dict[str, Any] = {
        "ours": {"run_ids": mine.run_ids(), "runs": {}},
        "torchx": {
            "run_ids": sorted(theirs.run_ids()),
            "children_of_parent": sorted(theirs.run_ids(parent_run_id=parent)),
            "runs": {},
        },
    }
    for run in runs:
        out["ours"]["runs"][run] = {
            "metadata": dict(mine.metadata(run)),
            "artifacts": {n: [a.path, a.metadata] for n, a in mine.artifacts(run).items()},
            "sources": sorted([s.source_run_id, s.artifact_name] for s in mine.sources(run)),
            "descendants": sorted([d.run_id, d.artifact_name] for d in mine.descendants(run)),
            "metrics": [[p.name, p.value, p.step] for p in mine.metrics(run)],
            "status": mine.status(run),
            "ancestors": mine.lineage(run).ancestors,
        }
        out["torchx"]["runs"][run] = {
            "metadata": dict(theirs.metadata(run)),
            "artifacts": {n: [a.path, a.metadata] for n, a in theirs.artifacts(run).items()},
            "sources": sorted([s.source_run_id, s.artifact_name] for s in theirs.sources(run)),
        }
    return out


def write(tracker: Any, action: dict[str, Any]) -> None:
    tracker.add_metadata(action["run"], **action["metadata"])
    tracker.add_source(action["run"], action["source"], action["artifact"])


def torchx_runs(url: str, endpoint: str, runs: list[str], sources: dict[str, str]) -> None:
    """Many runs written by TorchX's own tracker, as its ``AppRun`` would (no status: TorchX has
    none); 16 at a time, so a store of 1000 runs is written in seconds."""
    tracker = torchx(url, endpoint)

    def write(run: str) -> None:
        tracker.add_metadata(run, written_by="torchx")
        if run in sources:
            tracker.add_source(run, sources[run], "model")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, runs))


def main() -> None:
    request = json.loads(sys.argv[1])
    url, endpoint = request["url"], request["endpoint"]
    results: list[Any] = []
    for action in request["actions"]:
        if action["do"] == "dump":
            results.append(dump(url, endpoint, action["runs"], action["parent"]))
        elif action["do"] == "sources":
            found = ours(url, endpoint).sources(action["run"])
            results.append(sorted([s.source_run_id, s.artifact_name] for s in found))
        elif action["do"] == "torchx_write":
            write(torchx(url, endpoint), action)
            results.append(None)
        elif action["do"] == "torchx_runs":
            torchx_runs(url, endpoint, action["runs"], action["sources"])
            results.append(None)
        elif action["do"] == "ours_write":
            write(ours(url, endpoint), action)
            results.append(None)
        else:
            raise SystemExit(f"unknown action {action['do']!r}")
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
