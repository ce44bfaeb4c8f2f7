"""TorchX components with tracking wired in (registered as ``lineage.python`` and ``lineage.ddp``).

* ``lineage.python``: one Python process (TorchX's ``utils.python`` underneath).
* ``lineage.ddp``: a torchrun-launched distributed job (TorchX's ``dist.ddp`` underneath).

Both take ``--parent_run_id`` (the run this one derives from) and ``--strict`` (tracking failures
are fatal in the job). No ``from __future__ import annotations`` in component modules: TorchX
reads their annotations at run time to build the CLI.
"""
