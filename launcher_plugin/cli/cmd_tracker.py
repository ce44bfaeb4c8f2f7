"""``torchx tracker list {jobs,metadata,artifacts,lineage,metrics,summary}``: TorchX's, and more.

Also ``torchx tracker reconcile`` (the scheduler's final state into open runs), ``torchx
tracker sync [RUN_ID | --all]`` (deliver what jobs left in the spool, :mod:`trackers.sync`) and
``torchx tracker ui`` (a read-only web view, :mod:`launcher_plugin.ui`; imports the ui extra).

Every subcommand takes ``--format table|json|csv`` and ``--tracker NAME[=CONFIG]`` to choose the
store. Without ``--tracker`` the first configured tracker is used (``TORCHX_TRACKERS`` or
``.torchxconfig``, as TorchX does); with nothing configured, the default fsspec store
``./torchx-runs`` if it exists. An unknown run id prints a message and exits with status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torchx.cli.cmd_base import SubCommand
from torchx.runner import get_runner
from torchx.tracker.api import TrackerBase

from launcher_plugin.cli.render import (
    Output,
    lineage_nodes,
    render_lineage_dot,
    render_lineage_mermaid,
    render_lineage_tree,
    to_jsonable,
)
from launcher_plugin.inject import job_config
from launcher_plugin.launcher_writes import Target
from launcher_plugin.reconcile import RunState, run_states
from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers
from launcher_plugin.ui.data import RunRow, read_row, summary_row
from trackers.api import LineageTracker, capabilities
from trackers.backends.fsspec import DEFAULT_ROOT
from trackers.backends.openlineage import OpenLineageTracker
from trackers.backends.openlineage_backfill import store_writes
from trackers.env import ENV_TORCHX_TRACKER_SPOOL_DIR, tracker_config_env_var_name
from trackers.errors import TrackerError
from trackers.jsonsafe import text_of
from trackers.lineage import walk_lineage
from trackers.redact import redact
from trackers.registry import create_tracker
from trackers.spool import spool_root
from trackers.sync import sync_spool
from trackers.types import Direction

logger: logging.Logger = logging.getLogger(__name__)

Handler = Callable[[TrackerBase, argparse.Namespace], Output]


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


def choose_tracker(spec: TrackerSpec | None, environ: Mapping[str, str]) -> TrackerBase:
    """The store a query reads: ``--tracker``, else the first configured, else the default."""
    return chosen_store(spec, environ).tracker


def chosen_store(spec: TrackerSpec | None, environ: Mapping[str, str]) -> Target:
    """:func:`choose_tracker` with its name and the config that reopens it (what a write kept
    in the spool is labelled with, so ``torchx tracker sync`` reaches the same store)."""
    if spec is not None:
        resolved = resolve_trackers([spec], environ)
        name, config = next(iter(resolved.items()))
        origin = f"--tracker {name}"
    else:
        configured = resolve_trackers([], environ)
        if configured:
            name, config = next(iter(configured.items()))
            origin = tracker_config_env_var_name(name)
        elif Path(DEFAULT_ROOT).is_dir():
            name, config, origin = "fsspec", None, "default store"
        else:
            raise CliError(
                "no tracker configured and no ./torchx-runs store here; pass --tracker "
                "fsspec=URL, set TORCHX_TRACKERS, or add [torchx:tracker] to .torchxconfig"
            )
    tracker = create_tracker(name, config, origin=origin)
    return Target(name, tracker, job_config(name, tracker, config))


def key_value_rows(values: Mapping[str, object]) -> list[list[object]]:
    """``[key, value]`` rows; non-string values shown as JSON."""
    return [[k, v if isinstance(v, str) else json.dumps(to_jsonable(v))] for k, v in values.items()]


def _require_run(tracker: TrackerBase, run_id: str) -> None:
    if isinstance(tracker, LineageTracker):
        known = tracker.has_run(run_id)
    else:
        known = run_id in set(tracker.run_ids())
    if not known:
        raise CliError(f"run {run_id!r} not found in {redact(repr(tracker))}")


def list_jobs(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """Run ids, optionally only the children of ``--parent-run-id``, optionally with status."""
    if args.parent_run_id:
        _require_run(tracker, args.parent_run_id)
        ids = tracker.run_ids(parent_run_id=args.parent_run_id)
    else:
        ids = tracker.run_ids()
    if args.status:
        return _states_output(tracker, ids, write=False)
    rows = sorted(_job_rows(tracker, ids), key=_newest_first)
    return Output(
        data=[
            {
                "run_id": r.run_id,
                "status": r.status,
                "start_time": _iso_s(r.start_time),
                "component": r.component,
            }
            for r in rows
        ],
        headers=["JOB ID", "STATUS", "STARTED", "COMPONENT"],
        rows=[
            [r.run_id, r.status or "", _iso_s(r.start_time) or "", r.component or ""] for r in rows
        ],
    )


def _job_rows(tracker: TrackerBase, ids: Sequence[str]) -> list[RunRow]:
    """Each run's status, start and component: from the store's catalog (a few reads for the
    whole store) where it names the run's component, else from the run's own records (its
    launch record and status history, and its sources where the store has no catalog: a few
    reads per run). Runs without a launch record, or launched before the catalog kept
    components, take the second way."""
    summaries = {}
    if isinstance(tracker, LineageTracker) and tracker.runs_summary_is_cheap:
        summaries = {s.run_id: s for s in tracker.runs_summary(ids)}
    rows = []
    for run_id in ids:
        summary = summaries.get(run_id)
        if summary is not None and summary.component is not None:
            rows.append(summary_row(summary))
        else:
            rows.append(read_row(tracker, run_id, summary))
    return rows


def _newest_first(row: RunRow) -> tuple[bool, float, str]:
    """Runs by start time, newest first; runs without one last, by id."""
    started = row.start_time
    return (started is None, -(started or 0.0), row.run_id)


def _iso_s(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")


def reconcile_runs(args: argparse.Namespace) -> Output:
    """Write the scheduler's final state into runs the store still has open (and into the
    configured write-only trackers, e.g. ``openlineage``, which cannot tell what is open)."""
    store = chosen_store(args.tracker, os.environ)
    tracker = store.tracker
    for run_id in args.RUN_ID:
        _require_run(tracker, run_id)
    also = [t for t in write_only_trackers(os.environ) if t.name != store.name]
    output = _states_output(
        tracker, args.RUN_ID or tracker.run_ids(), write=True, store=store, also=also
    )
    output.skipped = list(getattr(tracker, "damaged", []))
    return output


def write_only_trackers(environ: Mapping[str, str]) -> list[Target]:
    """The configured trackers (``TORCHX_TRACKERS``, ``.torchxconfig``) that only take writes;
    one that cannot be built is logged and left out (the store's own write goes on)."""
    targets = []
    for name, config in resolve_trackers([], environ).items():
        try:
            tracker = create_tracker(name, config, origin=tracker_config_env_var_name(name))
        except Exception as e:
            logger.warning("tracker %s left out: %s", name, redact(f"{type(e).__name__}: {e}"))
            continue
        if not capabilities(tracker).readable:
            targets.append(Target(name, tracker, job_config(name, tracker, config)))
    return targets


def _states_output(
    tracker: TrackerBase,
    run_ids: Sequence[str],
    *,
    write: bool,
    store: Target | None = None,
    also: Sequence[Target] = (),
) -> Output:
    readable = _lineage_tracker(tracker, "run status")
    with get_runner() as runner:
        states = run_states(readable, runner, run_ids, write=write, store=store, also=also)
    headers = ["JOB ID", "STATUS", "SCHEDULER"] + (["WRITTEN"] if write else [])
    rows: list[list[object]] = [
        [s.run_id, s.recorded or "", s.scheduler, *([_written(s)] if write else [])] for s in states
    ]
    data: list[dict[str, object]] = [
        {"run_id": s.run_id, "status": s.recorded, "scheduler": s.scheduler}
        | ({"written": s.written, "delivered": s.delivered} if write else {})
        for s in states
    ]
    # A status kept in the spool is not recorded yet: say so in the exit status too.
    pending = any(s.written and not s.delivered for s in states)
    return Output(data=data, headers=headers, rows=rows, failed=pending)


def _written(state: RunState) -> str:
    if state.written is None:
        return ""
    return state.written if state.delivered else f"{state.written} (in the spool: tracker sync)"


def list_metadata(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """A run's metadata, merged (last write wins)."""
    _require_run(tracker, args.RUN_ID)
    md = dict(tracker.metadata(args.RUN_ID))
    return Output(data=md, headers=["ID", "VALUE"], rows=key_value_rows(md))


def list_artifacts(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """A run's artifacts, optionally one name."""
    _require_run(tracker, args.RUN_ID)
    found = [a for a in tracker.artifacts(args.RUN_ID).values() if args.artifact in (None, a.name)]
    rows = [[a.name, a.path, json.dumps(to_jsonable(a.metadata))] for a in found]
    data = [{"name": a.name, "path": a.path, "metadata": to_jsonable(a.metadata)} for a in found]
    return Output(data=data, headers=["ARTIFACT", "PATH", "METADATA"], rows=rows)


def list_lineage(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """Ancestors and/or descendants of a run as an indented tree."""
    _require_run(tracker, args.RUN_ID)
    direction: Direction = (
        "sources" if args.sources_only else "descendants" if args.descendants_only else "both"
    )
    lineage = walk_lineage(
        tracker, args.RUN_ID, direction=direction, artifact_name=args.artifact, depth=args.depth
    )
    output = Output(
        data=lineage.to_dict(),
        text=render_lineage_tree(lineage, direction),
        headers=["PARENT", "CHILD", "ARTIFACT"],
        rows=[[e.parent, e.child, e.artifact_name or ""] for e in lineage.edges],
    )
    if args.format in GRAPH_FORMATS:
        statuses = {run: _recorded_status(tracker, run) for run in lineage_nodes(lineage)}
        render = render_lineage_dot if args.format == "dot" else render_lineage_mermaid
        output.formats[args.format] = render(lineage, statuses)
    return output


#: ``list lineage --format``s that draw the graph: Graphviz DOT and Mermaid.
GRAPH_FORMATS = ("dot", "mermaid")


def _recorded_status(tracker: TrackerBase, run_id: str) -> str | None:
    """The run's recorded status for a graph's node; ``None`` where the store has none."""
    if not isinstance(tracker, LineageTracker):
        return None
    try:
        return tracker.status(run_id)
    except (TrackerError, OSError) as e:
        logger.debug("no status for %s: %s", run_id, e)
        return None


def export_openlineage(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """Send the OpenLineage events of runs already in the store (``tracker export
    openlineage``): the same events, UUIDs and times the live tracker sends, where the store
    keeps each write (fsspec, S3); see :mod:`trackers.backends.openlineage_backfill`."""
    if bool(args.RUN_ID) == bool(args.all):
        raise CliError("export needs RUN_IDs or --all (not both)")
    target = create_tracker("openlineage", args.to, origin="--to")
    if not isinstance(target, OpenLineageTracker):
        raise CliError(f"--to: {redact(repr(target))} is not the openlineage tracker")
    for run_id in args.RUN_ID:
        _require_run(tracker, run_id)
    rows: list[list[object]] = []
    failed = False
    try:
        for run_id in args.RUN_ID or tracker.run_ids():
            sent, note = 0, ""
            if not failed:
                try:
                    for write in store_writes(tracker, run_id):
                        sent += target.emit(run_id, write)
                except TrackerError as e:
                    note, failed = redact(str(e)), True
            else:
                note = "not sent: an earlier run failed"
            rows.append([run_id, sent, note])
    finally:
        target.close()
    output = Output(
        data=[{"run_id": r, "events": n, "note": note} for r, n, note in rows],
        headers=["JOB ID", "EVENTS", "NOTE"],
        rows=rows,
    )
    output.failed = failed
    return output


def _lineage_tracker(tracker: TrackerBase, what: str) -> LineageTracker:
    if not isinstance(tracker, LineageTracker):
        raise CliError(
            f"{redact(repr(tracker))} records no {what} (it is not a torchx-lineage store)"
        )
    return tracker


def list_metrics(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """A run's metric points, optionally one metric."""
    _require_run(tracker, args.RUN_ID)
    points = _lineage_tracker(tracker, "metrics").metrics(args.RUN_ID, args.name)
    rows: list[list[object]] = [
        [p.name, p.step if p.step is not None else "", p.value, _iso(p.timestamp), _rank(p.rank)]
        for p in points
    ]
    data = [
        {"name": p.name, "step": p.step, "value": p.value, "time": p.timestamp, "rank": p.rank}
        for p in points
    ]
    return Output(data=data, headers=["NAME", "STEP", "VALUE", "TIME", "RANK"], rows=rows)


def list_summary(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """A run's summary values (and its recorded status)."""
    _require_run(tracker, args.RUN_ID)
    store = _lineage_tracker(tracker, "summaries")
    values = dict(store.summary(args.RUN_ID))
    status = store.status(args.RUN_ID)
    rows: list[list[object]] = [["status", status or ""], *key_value_rows(values)]
    return Output(data={"status": status, "summary": values}, headers=["KEY", "VALUE"], rows=rows)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="milliseconds")


def _rank(rank: int | None) -> object:
    return "" if rank is None else rank


def _args_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", type=str, help="only the metric with this name")
    _add_run_id(p)


def _add_run_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("RUN_ID", type=str, help="run id (the app handle torchx run printed)")


def _args_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--parent-run-id", "--parent_run_id", dest="parent_run_id", help="only runs derived from it"
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="also show each run's recorded status and, for runs still open, the scheduler's",
    )


def _args_reconcile(p: argparse.ArgumentParser) -> None:
    p.add_argument("RUN_ID", nargs="*", help="runs to reconcile (default: every open run)")


def _args_artifacts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", type=str, help="only the artifact with this name")
    _add_run_id(p)


def _args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("RUN_ID", nargs="*", help="runs to export (or --all)")
    p.add_argument("--all", action="store_true", help="every run in the store")
    p.add_argument(
        "--to",
        required=True,
        metavar="CONFIG",
        help="where to send: http(s)://HOST[:PORT], file://PATH, or '' for the OpenLineage "
        "client's own configuration (openlineage.yml, OPENLINEAGE_URL)",
    )


def _args_lineage(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--sources-only", action="store_true", help="only ancestors")
    group.add_argument("--descendants-only", action="store_true", help="only descendants")
    p.add_argument("--artifact", type=str, help="only links about this artifact")
    p.add_argument("--depth", type=int, default=None, help="at most this many links away")
    _add_run_id(p)


_SUBCOMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {
    "jobs": (list_jobs, _args_jobs, "list runs: status, start time, component; newest first"),
    "metadata": (list_metadata, _add_run_id, "list a run's metadata"),
    "artifacts": (list_artifacts, _args_artifacts, "list a run's artifacts"),
    "lineage": (list_lineage, _args_lineage, "show a run's ancestors and descendants"),
    "metrics": (list_metrics, _args_metrics, "list a run's metric points"),
    "summary": (list_summary, _add_run_id, "show a run's summary values and status"),
}


def compact_runs(tracker: TrackerBase, args: argparse.Namespace) -> Output:
    """Write runs' snapshots and catalog entries, then merge the catalog's segments."""
    if bool(args.RUN_ID) == bool(args.all):
        raise CliError("torchx tracker compact: give run ids or --all (not both)")
    store = _lineage_tracker(tracker, "compaction")
    compact = getattr(store, "compact", None)
    merge = getattr(store, "compact_catalog", None)
    if not callable(compact) or not callable(merge):
        raise CliError(f"{store!r} keeps no snapshots or catalog: nothing to compact")
    runs = list(store.run_ids()) if args.all else list(args.RUN_ID)
    for run_id in runs:
        _require_run(store, run_id)
    for run_id in runs:
        compact(run_id)
    merged = merge()
    rows: list[list[object]] = [[r, "compacted"] for r in runs]
    data = {"runs": runs, "catalog_merged": bool(merged)}
    return Output(data=data, headers=["RUN ID", "RESULT"], rows=rows)


def _args_compact(p: argparse.ArgumentParser) -> None:
    p.add_argument("RUN_ID", nargs="*", help="runs to compact")
    p.add_argument("--all", action="store_true", help="every run of the store")


def sync_spooled(args: argparse.Namespace) -> Output:
    """Deliver what jobs left in the spool (``torchx tracker sync``)."""
    if bool(args.RUN_ID) == bool(args.all):
        raise CliError("sync needs a RUN_ID or --all (not both)")
    root = Path(args.spool_dir).expanduser() if args.spool_dir else spool_root(os.environ)
    if root is None:
        raise CliError(
            f"the spool is turned off ({ENV_TORCHX_TRACKER_SPOOL_DIR}); pass --spool-dir"
        )
    configs = {spec.name: spec.config for spec in args.tracker or []}
    results = sync_spool(root, args.RUN_ID, configs=configs)
    if args.RUN_ID and not results:
        raise CliError(f"nothing spooled for run {args.RUN_ID!r} under {root}")
    rows: list[list[object]] = [
        [r.run_id, r.tracker, r.delivered, r.skipped, "?" if r.left < 0 else r.left, r.note]
        for r in results
    ]
    output = Output(
        data=[r.__dict__ for r in results],
        headers=["JOB ID", "TRACKER", "DELIVERED", "SKIPPED", "LEFT", "NOTE"],
        rows=rows,
    )
    output.failed = any(r.left != 0 for r in results)
    return output


def _args_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("RUN_ID", nargs="?", help="the run whose spooled records to deliver")
    p.add_argument("--all", action="store_true", help="every run in the spool")
    p.add_argument(
        "--spool-dir",
        help=f"the spool to read (default: {ENV_TORCHX_TRACKER_SPOOL_DIR}, else "
        "~/.cache/torchx-lineage/spool)",
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument(
        "--tracker",
        type=TrackerSpec.from_flag,
        action="append",
        metavar="NAME=CONFIG",
        help="reach tracker NAME under another config from here (default: the config the job "
        "used, from the spool); repeatable",
    )


def _add_common(p: argparse.ArgumentParser, formats: Sequence[str] = ()) -> None:
    p.add_argument("--format", choices=["table", "json", "csv", *formats], default="table")
    p.add_argument(
        "--tracker",
        type=TrackerSpec.from_flag,
        default=None,
        metavar="NAME[=CONFIG]",
        help="the store to use, e.g. fsspec=file:///data/runs "
        "(default: the first configured tracker)",
    )


#: Exit status of a query that printed what it could read but skipped unreadable records.
EXIT_SKIPPED = 3


def _printing(make: Callable[[argparse.Namespace], Output]) -> Callable[[argparse.Namespace], None]:
    """A subcommand that prints ``make(args)`` in ``--format``; errors print one line, exit 1.

    An output marked ``failed`` (something left undone) is printed, then exits with status 1.
    One with ``skipped`` records is printed, the skipped ones are named on stderr, and it exits
    with status :data:`EXIT_SKIPPED` (3).
    """

    def run(args: argparse.Namespace) -> None:
        try:
            result = make(args)
        except (CliError, TrackerError, OSError) as e:
            print(f"torchx tracker: {text_of(str(e))}", file=sys.stderr)
            sys.exit(1)
        print(result.render(args.format))
        if result.skipped:
            print(
                f"torchx tracker: {len(result.skipped)} unreadable record(s) skipped "
                f"(exit status {EXIT_SKIPPED}):",
                file=sys.stderr,
            )
            for path, why in result.skipped:
                print(f"  {text_of(path)}: {text_of(why)}", file=sys.stderr)
        if result.failed:
            sys.exit(1)
        if result.skipped:
            sys.exit(EXIT_SKIPPED)

    return run


def _args_ui(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracker",
        type=TrackerSpec.from_flag,
        default=None,
        metavar="NAME[=CONFIG]",
        help="the store to show (default: the first configured tracker, as for list)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: a free one)")


def serve_ui(args: argparse.Namespace) -> None:
    """``torchx tracker ui``: serve the read-only web view until Ctrl-C (imports the ui extra)."""
    try:
        tracker = choose_tracker(args.tracker, os.environ)
        from launcher_plugin.ui.serve import serve

        serve(tracker, args.host, args.port)
    except KeyboardInterrupt:
        return
    except (CliError, TrackerError, OSError, ImportError) as e:
        print(f"torchx tracker ui: {text_of(str(e))}", file=sys.stderr)
        sys.exit(1)


class CmdTracker(SubCommand):
    """``torchx tracker list ...``: query runs, metadata, artifacts and lineage."""

    def add_arguments(self, subparser: argparse.ArgumentParser) -> None:
        commands = subparser.add_subparsers(title="tracker commands")
        list_parser = commands.add_parser("list", help="list runs and what they recorded")
        list_commands = list_parser.add_subparsers(title="list commands")
        for name, (handler, add_args, help_text) in _SUBCOMMANDS.items():
            p = list_commands.add_parser(name, help=help_text)
            _add_common(p, GRAPH_FORMATS if name == "lineage" else ())
            add_args(p)
            p.set_defaults(func=self._runner(handler))
        p = commands.add_parser("reconcile", help="record the scheduler's final state of open runs")
        _add_common(p)
        _args_reconcile(p)
        p.set_defaults(func=_printing(reconcile_runs))
        p = commands.add_parser(
            "compact", help="write runs' snapshots and merge the store's catalog (faster reads)"
        )
        _add_common(p)
        _args_compact(p)
        p.set_defaults(func=self._runner(compact_runs))
        export_parser = commands.add_parser("export", help="send runs of a store elsewhere")
        export_commands = export_parser.add_subparsers(title="export formats")
        p = export_commands.add_parser(
            "openlineage", help="send the OpenLineage events of runs in the store (backfill)"
        )
        _add_common(p)
        _args_export(p)
        p.set_defaults(func=self._runner(export_openlineage))
        p = commands.add_parser("sync", help="deliver records jobs left in the spool")
        _args_sync(p)
        p.set_defaults(func=_printing(sync_spooled))
        p = commands.add_parser("ui", help="serve a read-only web view of the store")
        _args_ui(p)
        p.set_defaults(func=serve_ui)

    def _runner(self, handler: Handler) -> Callable[[argparse.Namespace], None]:
        def make(args: argparse.Namespace) -> Output:
            tracker = choose_tracker(args.tracker, os.environ)
            output = handler(tracker, args)
            output.skipped = list(getattr(tracker, "damaged", []))
            return output

        return _printing(make)

    def run(self, args: argparse.Namespace) -> None:
        # `torchx tracker` without a subcommand: argparse dispatches the leaves through `func`.
        print(
            "usage: torchx tracker list {jobs,metadata,artifacts,lineage,metrics,summary} ...",
            file=sys.stderr,
        )
        sys.exit(1)
