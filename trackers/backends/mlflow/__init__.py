"""The MLflow backend: TorchX runs as MLflow runs, on a tracking server or a database.

One module per concern: ``config``, ``encoding`` (values, names, MLflow's limits), ``errors``
(failure classification, the HTTP probe), ``run_agreement`` (one MLflow run per TorchX run across
processes), ``tracker`` (the mapping). ``mlflow`` is imported only when a tracker is built;
``docs/mlflow.md`` describes the mapping.
"""

from trackers.backends.mlflow.config import MLflowConfig
from trackers.backends.mlflow.encoding import (
    MAX_REQUEST_BYTES,
    TAG_RUN_ID,
    decode_param,
    encode_param,
    run_key,
)
from trackers.backends.mlflow.tracker import MLflowTracker, create_tracker

__all__ = [
    "MAX_REQUEST_BYTES",
    "MLflowConfig",
    "MLflowTracker",
    "TAG_RUN_ID",
    "create_tracker",
    "decode_param",
    "encode_param",
    "run_key",
]
