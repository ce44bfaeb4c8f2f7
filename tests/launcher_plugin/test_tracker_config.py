"""Precedence of tracker settings: --tracker > launching env > .torchxconfig (one table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers
from trackers.errors import TrackerConfigError

TORCHXCONFIG = """
[torchx:tracker]
fsspec =
other =

[tracker:fsspec]
config = /from/torchxconfig

[tracker:other]
config = other-from-torchxconfig
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> list[str]:
    (tmp_path / ".torchxconfig").write_text(TORCHXCONFIG)
    return [str(tmp_path)]


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        # nothing on the CLI or in env: .torchxconfig decides names and configs
        ([], {}, {"fsspec": "/from/torchxconfig", "other": "other-from-torchxconfig"}),
        # env names replace .torchxconfig names; configs still fall back to .torchxconfig
        ([], {"TORCHX_TRACKERS": "other"}, {"other": "other-from-torchxconfig"}),
        # env config beats .torchxconfig config
        (
            [],
            {"TORCHX_TRACKERS": "fsspec", "TORCHX_TRACKER_FSSPEC_CONFIG": "/from/env"},
            {"fsspec": "/from/env"},
        ),
        # CLI names replace both; CLI config beats env and .torchxconfig
        (
            [TrackerSpec("fsspec", "/from/cli")],
            {"TORCHX_TRACKERS": "other", "TORCHX_TRACKER_FSSPEC_CONFIG": "/from/env"},
            {"fsspec": "/from/cli"},
        ),
        # a CLI name without config takes env, then .torchxconfig
        (
            [TrackerSpec("fsspec")],
            {"TORCHX_TRACKER_FSSPEC_CONFIG": "/from/env"},
            {"fsspec": "/from/env"},
        ),
        ([TrackerSpec("fsspec")], {}, {"fsspec": "/from/torchxconfig"}),
        ([TrackerSpec("newone")], {}, {"newone": None}),
    ],
)
def test_precedence(
    config_dir: list[str],
    cli: list[TrackerSpec],
    env: dict[str, str],
    expected: dict[str, str | None],
) -> None:
    assert resolve_trackers(cli, env, dirs=config_dir) == expected


def test_flag_keeps_everything_after_the_first_equals_byte_for_byte() -> None:
    raw = 'a=b,c "d" $HOME\\e\nf é'
    assert TrackerSpec.parse(f"mlflow={raw}") == TrackerSpec("mlflow", raw)
    assert TrackerSpec.parse("fsspec") == TrackerSpec("fsspec", None)
    assert TrackerSpec.parse("fsspec=") == TrackerSpec("fsspec", "")


@pytest.mark.parametrize("flag", ["=x", "my-tracker=x", "9lives"])
def test_bad_flags_name_the_flag(flag: str) -> None:
    with pytest.raises(TrackerConfigError, match="--tracker"):
        TrackerSpec.parse(flag)


def test_a_tracker_given_twice_is_an_error(config_dir: list[str]) -> None:
    with pytest.raises(TrackerConfigError, match="more than once"):
        resolve_trackers([TrackerSpec("fsspec", "/a"), TrackerSpec("fsspec", "/b")], {}, config_dir)
