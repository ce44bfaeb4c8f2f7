"""Config strings in mapping form, shared by the backends that accept one.

Every backend takes a one-line YAML/JSON flow mapping (``{url: ..., key: value}``) as one of its
config forms; reading it and refusing what is not a mapping is the same for all of them.
"""

from __future__ import annotations

from typing import Any

import yaml

from trackers.errors import TrackerConfigError


def load_mapping_config(text: str, example: str) -> dict[str, Any]:
    """Parse ``text`` as a YAML/JSON mapping; errors show ``example`` as the expected form."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrackerConfigError(
            f"not a valid YAML/JSON mapping ({first_line}); expected e.g. {example}"
        ) from None
    if not isinstance(data, dict):
        raise TrackerConfigError(f"expected a mapping such as {example}")
    return {str(k): v for k, v in data.items()}
