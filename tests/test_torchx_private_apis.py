"""The TorchX surface we rely on exists in the installed TorchX (0.7.0 or nightly).

If TorchX moves a private name, this fails naming it, instead of a user's ``torchx`` command.
"""

from __future__ import annotations

import importlib

import pytest
from torchx.specs import AppDryRunInfo

from trackers.torchx_compat import PRIVATE_APIS, has_plugin_registry

FLAVOUR = "nightly" if has_plugin_registry() else "release"


def _has(module_name: str, dotted: str) -> bool:
    obj: object = importlib.import_module(module_name)
    *owners, attr = dotted.split(".")
    for name in owners:
        obj = getattr(obj, name)
    if obj is AppDryRunInfo:  # its fields are set in __init__
        obj = AppDryRunInfo(None, str)
    return hasattr(obj, attr)


@pytest.mark.parametrize(
    "module_name,dotted,why",
    [(m, a, w) for m, a, which, w in PRIVATE_APIS if which in ("all", FLAVOUR)],
    ids=[f"{m}.{a}" for m, a, which, _ in PRIVATE_APIS if which in ("all", FLAVOUR)],
)
def test_private_torchx_api_we_rely_on_exists(module_name: str, dotted: str, why: str) -> None:
    assert _has(module_name, dotted), (
        f"TorchX {FLAVOUR} has no {module_name}.{dotted}, which torchx-lineage uses for: {why}. "
        f"Update trackers/torchx_compat.py for this TorchX."
    )


def test_every_private_api_entry_names_a_known_torchx_flavour() -> None:
    assert {which for _, _, which, _ in PRIVATE_APIS} <= {"all", "release", "nightly"}
    # Each flavour-specific need has its counterpart (the same purpose on the other flavour),
    # except --stdin, which only nightly has.
    release = {w for _, _, which, w in PRIVATE_APIS if which == "release"}
    nightly = {w for _, _, which, w in PRIVATE_APIS if which == "nightly"}
    assert release - nightly == {"the submitted AppDef"}  # nightly's `app` is public
    assert nightly - release == {"--stdin component"}
