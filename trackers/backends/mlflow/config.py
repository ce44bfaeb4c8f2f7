"""The MLflow backend's config string: empty, a tracking URI, or a one-line YAML/JSON mapping.

Credentials are refused here (the config travels in env vars and logs); ``docs/mlflow.md``
lists the keys.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

from trackers.config_text import load_mapping_config
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
        unknown = sorted(str(k) for k in set(data) - set(_CONFIG_KEYS))
        if unknown:
            raise TrackerConfigError(
                f"unknown key(s) {unknown} in mapping config; known: {', '.join(_CONFIG_KEYS)}"
            )
        strings: dict[str, str | None] = {}
        for key in ("uri", "experiment", "artifact_location"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TrackerConfigError(f"{key!r} must be a non-empty string, got {value!r}")
            strings[key] = value.strip() if isinstance(value, str) else None
        flags: dict[str, bool] = {}
        for key in ("upload_artifacts", "strict"):
            value = data.get(key, False)
            if not isinstance(value, bool):
                raise TrackerConfigError(f"{key!r} must be true or false, got {value!r}")
            flags[key] = value
        uri = strings["uri"]
        return cls(
            uri=_checked_uri(uri) if uri is not None else None,
            experiment=strings["experiment"],
            artifact_location=strings["artifact_location"],
            upload_artifacts=flags["upload_artifacts"],
            strict=flags["strict"],
        )

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
