"""Keep credentials out of log lines, error messages and CLI output."""

from __future__ import annotations

import re
from typing import overload

#: Words that make a name (a query parameter, a config option) look like a credential.
CREDENTIAL_WORDS = "token|secret|password|passwd|credential|key"
_CREDENTIAL_NAME = re.compile(CREDENTIAL_WORDS, re.IGNORECASE)

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@")
_SECRET_PARAM = re.compile(
    rf"(?P<key>[\w.-]*(?:{CREDENTIAL_WORDS})[\w.-]*)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>[^&\s,;}\"']+)",
    re.IGNORECASE,
)


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """``http://u:tok@h/?token=x`` -> ``http://u:***@h/?token=***``; ``None`` stays ``None``."""
    if text is None:
        return None
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{m['sep']}***", text)


def looks_like_credential(name: str) -> bool:
    """Whether ``name`` (a query parameter, a config option) names a credential."""
    return _CREDENTIAL_NAME.search(name) is not None
