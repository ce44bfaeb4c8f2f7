"""No value crashes a non-strict job: each hostile value in a real job (a subprocess that calls
``AppRun.run_from_env()`` with the TORCHX_* env, strict off), and all of them through a real
``torchx run -s local_cwd``. The job exits 0; the value is stored in its documented fallback form
(README, "Values JSON cannot hold") and the log names it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import clean_env, torchx
from trackers.backends.fsspec import create_tracker
from trackers.jsonsafe import MAX_DEPTH

RUN = "local_cwd://torchx/hostile-1"

#: The job's preamble: hostile objects the cases use.
PREAMBLE = """
import sys
from trackers import AppRun
class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")
cycle = {"a": 1}
cycle["self"] = cycle
deep = []
node = deep
for _ in range(5000):
    node.append([])
    node = node[0]
run = AppRun.run_from_env()
"""

#: case -> (the job's statement, a check of what the store holds, what the log must name)
CASES: dict[str, tuple[str, object, str]] = {
    "tuple_key": ("run.add_metadata(value={(1, 2): 3})", {"(1, 2)": 3}, "key (1, 2)"),
    "cycle": (
        "run.add_metadata(value=cycle)",
        {"a": 1, "self": "<circular reference to dict>"},
        "['self']: a circular reference",
    ),
    "raising_repr": (
        "run.add_metadata(value=BadRepr())",
        "<unrepresentable BadRepr: repr() raised RuntimeError>",
        "repr() raised RuntimeError",
    ),
    "set": ("run.add_metadata(value={3})", "{3}", "a set stored as its repr"),
    "surrogate_value": ('run.add_metadata(value="a\\udcff")', "a\udcff", ""),
    "nan_inf": (
        'run.add_metadata(value=[float("nan"), float("inf"), -float("inf")])',
        "nan-inf",
        "",
    ),
    "huge_int": ("run.add_metadata(value=10**5000)", hex(10**5000), "16610 bits"),
    "huge_string": (
        'run.add_metadata(value="x" * (17 * 2**20))',
        "<dropped: str of 17825792 characters, over the 16 MiB record limit>",
        "a string of 17825792 characters dropped",
    ),
    "deep_nesting": ("run.add_metadata(value=deep)", "deep", f"nested deeper than {MAX_DEPTH}"),
}


def _job_env(store: Path, home: Path, run_id: str = RUN) -> dict[str, str]:
    env = clean_env(home)
    env.update(
        TORCHX_JOB_ID=run_id,
        TORCHX_TRACKERS="lineage_fsspec",
        TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG=str(store),
        TORCHX_TRACKER_SPOOL_DIR=str(home / "spool"),
        TORCHX_TRACKER_SHUTDOWN_TIMEOUT="20",
    )
    return env


def _run_job(tmp_path: Path, body: str, run_id: str = RUN) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(PREAMBLE + body + '\nrun.add_metadata(after="the job went on")\n')
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_job_env(tmp_path / "store", tmp_path, run_id),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _depth(value: object) -> tuple[int, object]:
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    return depth, value


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_value_is_stored_in_its_fallback_form(tmp_path: Path, case: str) -> None:
    statement, expected, logged = CASES[case]
    done = _run_job(tmp_path, statement)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    stored = create_tracker(str(tmp_path / "store")).metadata(RUN)
    assert stored["after"] == "the job went on"
    value = stored["value"]
    if expected == "nan-inf":
        assert (
            isinstance(value, list) and math.isnan(value[0]) and value[1:] == [math.inf, -math.inf]
        )
    elif expected == "deep":
        # the operation's arguments ({"values": {"value": ...}}) take two of the levels
        assert _depth(value) == (MAX_DEPTH - 2, f"<nested deeper than {MAX_DEPTH} levels>")
    else:
        assert value == expected
    if logged:
        assert logged in done.stderr
        assert done.stderr.count("stored in a fallback form") == 1  # one line per value


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a\nb", "holds a line break"),
        ("a\u2028b", "holds a line break"),
        (" padded", "starts or ends with whitespace"),
    ],
)
def test_an_artifact_name_torchx_cannot_hold_is_refused_and_the_job_goes_on(
    tmp_path: Path, name: str, problem: str
) -> None:
    done = _run_job(
        tmp_path,
        f'run.add_source("local_cwd://torchx/p", {name!r})\n'
        'run.add_source("local_cwd://torchx/p", "dataset")',
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"artifact name {name!r} {problem}; refused" in done.stderr
    store = create_tracker(str(tmp_path / "store"))
    assert [(s.source_run_id, s.artifact_name) for s in store.sources(RUN)] == [
        ("local_cwd://torchx/p", "dataset")
    ]


def test_a_run_id_with_undecodable_bytes_is_recorded(tmp_path: Path) -> None:
    run_id = os.fsdecode(b"local_cwd://torchx/hostile-\xff\xfe")  # what os.environ gives
    done = _run_job(tmp_path, "run.add_metadata(lr=0.1)", run_id)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    store = create_tracker(str(tmp_path / "store"))
    assert list(store.run_ids()) == [run_id]
    assert store.metadata(run_id)["lr"] == 0.1
    assert store.status(run_id) == "SUCCEEDED"
    listed = torchx(
        tmp_path, "tracker", "list", "jobs", "--tracker", f"fsspec={tmp_path / 'store'}"
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1].split()[0] == "local_cwd://torchx/hostile-\\xff\\xfe"


#: One job through ``torchx run`` with every hostile value at once (no ``$``: component args go
#: through TorchX's macro substitution).
TORCHX_RUN_JOB = (
    PREAMBLE
    + """
run.add_metadata(tuple_key={(1, 2): 3}, cycle=cycle, raising_repr=BadRepr(), nan=float("nan"))
run.add_metadata(surrogate="a\\udcff", huge_int=10**5000, deep=deep)
run.add_source("local_cwd://torchx/p", "a\\nb")
run.add_metadata(after="the job went on")
"""
)


@pytest.mark.e2e
def test_hostile_values_in_a_real_torchx_run(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(TORCHX_RUN_JOB)
    store = tmp_path / "store"
    done = torchx(
        tmp_path,
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"lineage_fsspec={store}",
        "lineage.python",
        "--script",
        "job.py",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    handle = done.stdout.strip().splitlines()[-1]
    md = create_tracker(str(store)).metadata(handle)
    assert md["after"] == "the job went on"
    assert md["tuple_key"] == {"(1, 2)": 3}
    assert md["cycle"] == {"a": 1, "self": "<circular reference to dict>"}
    assert md["raising_repr"] == "<unrepresentable BadRepr: repr() raised RuntimeError>"
    assert isinstance(md["nan"], float) and math.isnan(md["nan"])
    assert md["surrogate"] == "a\udcff"
    assert md["huge_int"] == hex(10**5000)
    assert _depth(md["deep"]) == (MAX_DEPTH - 2, f"<nested deeper than {MAX_DEPTH} levels>")
    assert create_tracker(str(store)).sources(handle) == []
    listed = torchx(
        tmp_path,
        "tracker",
        "list",
        "metadata",
        handle,
        "--tracker",
        f"fsspec={store}",
        "--format",
        "json",
    )
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert shown["surrogate"] == "a\\xff"  # the CLI prints valid Unicode: the byte as text
    assert shown["nan"] == "nan"


def test_mlflow_gets_bytes_that_are_not_utf8_as_text() -> None:
    from trackers.backends.mlflow import decode_param, encode_param

    assert encode_param("a\udcff") == "a\\xff"  # MLflow's API takes valid Unicode only
    assert encode_param({"k": "a\udcff"}) == '{"k": "a\\\\xff"}'
    assert decode_param(encode_param({(1, 2): 3})) == {"(1, 2)": 3}
