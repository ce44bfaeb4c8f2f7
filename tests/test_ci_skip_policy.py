"""On CI a skipped test fails, unless it does not apply to this TorchX or needs a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SKIPS = """
import pytest

def test_server_did_not_start():
    pytest.skip("no MLflow server")

def test_other_torchx():
    pytest.skip("not on this TorchX: nightly only")

def test_cluster():
    pytest.skip("no Kubernetes cluster: KUBECONFIG is not set")
"""


@pytest.mark.parametrize(("ci", "failed"), [("true", 1), ("", 0)], ids=["ci", "developer"])
def test_skips_fail_on_ci_except_the_accepted_ones(tmp_path: Path, ci: str, failed: int) -> None:
    (tmp_path / "test_skips.py").write_text(SKIPS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q"]
        + ["-rfs", "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")],
        cwd=REPO,
        env={"PATH": str(Path(sys.executable).parent), "CI": ci, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1]
    if failed:
        assert done.returncode == 1 and summary.startswith("1 failed, 2 skipped"), done.stdout
        assert "it was skipped: no MLflow server" in done.stdout
    else:
        assert done.returncode == 0 and summary.startswith("3 skipped"), done.stdout
