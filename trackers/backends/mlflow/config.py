"""The MLflow backend's config string: empty, a tracking URI, or a one-line YAML/JSON mapping.

Credentials are refused here (the config travels in env vars and logs); ``docs/mlflow.md``
lists the keys.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from trackers.config_options import FieldParser, check_known, load_mapping_config, parse_fields
from trackers.errors import TrackerConfigError
from trackers.redact import looks_like_credential, redact

__all__ = ["MLflowConfig"]

_CONFIG_KEYS = ("uri", "experiment", "artifact_location", "upload_artifacts", "strict")


@dataclass(frozen=True)
class MLflowConfig:
    """Where runs go: a tracking URI and experiment, plus two behaviour switches.

    ``None`` for ``uri``/``experiment`` means MLflow's own defaults and ``MLFLOW_*`` env vars.
    """

    uri: str | None = None
    experiment: str | None = None
    artifact_location: str | None = None
    upload_artifacts: bool = False
    strict: bool = False

    @classmethod
    def parse(cls, config: str | None) -> MLflowConfig:
        """Read a config string: empty, a tracking URI, or a YAML/JSON mapping."""
        text = (config or "").strip()
        if not text:
            return cls()
        if text.startswith("{"):
            return cls._from_mapping(text)
        return cls(uri=_checked_uri(text))

    @classmethod
    def _from_mapping(cls, text: str) -> MLflowConfig:
        example = '{uri: "http://host:5000", experiment: "my-experiment", upload_artifacts: true}'
        data = load_mapping_config(text, example)
        check_known(data, _CONFIG_KEYS)
        values = parse_fields(data, _FIELD_PARSERS, skip_none=False)
        uri = values.get("uri")
        return cls(**{**values, "uri": _checked_uri(uri) if uri is not None else None})

    def to_string(self) -> str:
        """This config as a config string (the plain URI when nothing else is set)."""
        extras = {
            "experiment": self.experiment,
            "artifact_location": self.artifact_location,
            "upload_artifacts": self.upload_artifacts or None,
            "strict": self.strict or None,
        }
        mapping = {k: v for k, v in {"uri": self.uri, **extras}.items() if v is not None}
        if set(mapping) <= {"uri"}:
            return self.uri or ""
        return json.dumps(mapping, ensure_ascii=False)


def _optional_str(name: str, value: object) -> str | None:
    """A non-empty string (stripped), or ``None`` for an option given as ``null``."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise TrackerConfigError(f"{name!r} must be a non-empty string, got {value!r}")
    return value.strip() if isinstance(value, str) else None


def _flag(name: str, value: object) -> bool:
    """A YAML/JSON boolean (``true``/``false``; YAML's ``yes``/``no`` read as booleans too)."""
    if not isinstance(value, bool):
        raise TrackerConfigError(f"{name!r} must be true or false, got {value!r}")
    return value


_FIELD_PARSERS: dict[str, FieldParser] = {
    "uri": _optional_str,
    "experiment": _optional_str,
    "artifact_location": _optional_str,
    "upload_artifacts": _flag,
    "strict": _flag,
}


def _checked_uri(uri: str) -> str:
    """``uri`` if it carries no credentials; otherwise a TrackerConfigError saying what to use."""
    hint = (
        "keep credentials out of the tracker config (it is passed in env vars and logged): use "
        "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, or for a "
        "database with a password set MLFLOW_TRACKING_URI in the job's environment"
    )
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as e:
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} is not a valid URI: {e}") from None
    if parts.password is not None:
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} contains a password; {hint}")
    if any(looks_like_credential(k) for k, _ in urllib.parse.parse_qsl(parts.query)):
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} contains a credential; {hint}")
    return uri
