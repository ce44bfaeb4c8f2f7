"""Old name of :mod:`trackers.ids`, kept until the modules still importing it move over."""

from trackers.ids import (
    check_artifact_name,
    decode_run_id,
    deterministic_record_names,
    encode_run_id,
    record_name,
)

__all__ = [
    "check_artifact_name",
    "decode_run_id",
    "deterministic_record_names",
    "encode_run_id",
    "record_name",
]
