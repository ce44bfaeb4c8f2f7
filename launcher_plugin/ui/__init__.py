"""``torchx tracker ui``: a read-only web view of a store's runs, metrics and lineage.

:mod:`~launcher_plugin.ui.data` reads the store through the tracker interface and returns
JSON-ready values (no web library needed, so ``torchx tracker list jobs`` shares it);
:mod:`~launcher_plugin.ui.series` splits and downsamples metric series for charts;
:mod:`~launcher_plugin.ui.index` keeps the runs table's rows, filled in the background;
:mod:`~launcher_plugin.ui.app` is the HTTP app (Starlette) and :mod:`~launcher_plugin.ui.serve`
runs it (uvicorn). Only ``serve`` and ``app`` import the ``ui`` extra's libraries.
"""
