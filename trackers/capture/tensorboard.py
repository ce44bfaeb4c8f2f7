"""Record ``torch.utils.tensorboard`` scalars into the current run as well.

With ``TORCHX_TRACKER_CAPTURE_TENSORBOARD=1``, ``AppRun.start`` calls :func:`capture_tensorboard`
with the current run's ``log``: ``SummaryWriter.add_scalar(tag, value, step)`` and
``add_scalars(main_tag, {k: v}, step)`` then also log there (``main_tag/k`` for the latter).
The TensorBoard output is unchanged: the original method runs first, and a failure on our side
is logged once, never raised.

torch is not imported for this: if ``torch.utils.tensorboard.writer`` is not loaded yet, an
import hook patches it when the program imports it.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

logger: logging.Logger = logging.getLogger(__name__)

WRITER_MODULE = "torch.utils.tensorboard.writer"
_PATCHED = "_torchx_lineage_captured"
_warned = False

#: Where captured scalars go: ``log(metrics, step)``, given by whoever starts the capture.
MetricSink = Callable[[dict[str, float], int | None], None]
_sink: MetricSink | None = None


def _log(metrics: dict[str, float], step: Any) -> None:
    global _warned
    sink = _sink
    if sink is None:  # patched without capture_tensorboard(): nowhere to record
        return
    try:
        sink(metrics, None if step is None else int(step))
    except Exception:
        if not _warned:
            _warned = True
            logger.exception("tracking: could not record a TensorBoard scalar (logged once)")


def patch_writer_module(module: ModuleType) -> None:
    """Wrap ``module.SummaryWriter``'s ``add_scalar`` and ``add_scalars`` (idempotent)."""
    cls = module.SummaryWriter
    if getattr(cls, _PATCHED, False):
        return
    add_scalar: Callable[..., Any] = cls.add_scalar
    add_scalars: Callable[..., Any] = cls.add_scalars

    @functools.wraps(add_scalar)
    def captured_add_scalar(
        self: Any, tag: str, scalar_value: Any, global_step: Any = None, *args: Any, **kw: Any
    ) -> Any:
        result = add_scalar(self, tag, scalar_value, global_step, *args, **kw)
        try:
            _log({tag: float(scalar_value)}, global_step)
        except (TypeError, ValueError):
            pass  # not a number TensorBoard would plot either
        return result

    @functools.wraps(add_scalars)
    def captured_add_scalars(
        self: Any,
        main_tag: str,
        values: dict[str, Any],
        global_step: Any = None,
        *a: Any,
        **kw: Any,
    ) -> Any:
        result = add_scalars(self, main_tag, values, global_step, *a, **kw)
        try:
            _log({f"{main_tag}/{k}": float(v) for k, v in values.items()}, global_step)
        except (TypeError, ValueError):
            pass
        return result

    cls.add_scalar = captured_add_scalar
    cls.add_scalars = captured_add_scalars
    setattr(cls, _PATCHED, True)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of the writer module to patch it once loaded."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != WRITER_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                _wrap_exec_module(spec.loader)
                return spec
        return None


def _wrap_exec_module(loader: importlib.abc.Loader) -> None:
    exec_module = loader.exec_module

    def exec_and_patch(module: ModuleType) -> None:
        exec_module(module)
        patch_writer_module(module)

    loader.exec_module = exec_and_patch  # type: ignore[method-assign]


def capture_tensorboard(log: MetricSink) -> None:
    """Send scalars to ``log``: patch now if the writer module is loaded, else when imported."""
    global _sink
    _sink = log
    module = sys.modules.get(WRITER_MODULE)
    if module is not None:
        patch_writer_module(module)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
