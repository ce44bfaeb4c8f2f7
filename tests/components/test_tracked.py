"""The components pass TorchX's own component linter and set the lineage env."""

from __future__ import annotations

import pytest
from torchx.specs.file_linter import validate
from torchx.specs.finder import get_component

import components.tracked as tracked


@pytest.mark.parametrize("fn", ["python", "ddp"])
def test_component_passes_torchx_linter(fn: str) -> None:
    # TorchX parses the signature and docstring itself: PEP 604 unions break it (0.7.0).
    assert validate(tracked.__file__, fn) == []


@pytest.mark.parametrize("name", ["lineage.python", "lineage.ddp", "utils.python", "dist.ddp"])
def test_components_are_registered_next_to_torchx_builtins(name: str) -> None:
    assert get_component(name).name == name


def test_python_sets_parent_and_strict_in_every_role() -> None:
    app = tracked.python(
        "--lr",
        "0.1",
        script="train.py",
        num_replicas=2,
        parent_run_id="local_cwd://t/p",
        strict=True,
    )
    for role in app.roles:
        assert role.env["TORCHX_PARENT_RUN_ID"] == "local_cwd://t/p"
        assert role.env["TORCHX_TRACKER_STRICT"] == "1"
        assert role.num_replicas == 2


def test_ddp_without_tracking_options_adds_nothing() -> None:
    app = tracked.ddp(script="train.py", j="1x2")
    for role in app.roles:
        assert "TORCHX_PARENT_RUN_ID" not in role.env and "TORCHX_TRACKER_STRICT" not in role.env
    assert "torchrun" in app.roles[0].args[-1]
