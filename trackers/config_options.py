"""The config-option toolkit the backends build their config parsers from.

A backend declares its options as a table of field parsers (name -> ``parse(name, value)``);
this module reads the one-line YAML/JSON mapping form, refuses unknown keys, runs each field's
parser and holds the shared parsers (strings, yes/no words, bounded numbers, choices), so every
backend accepts values and reports bad ones the same way: naming the option, the value and what
was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from trackers.errors import TrackerConfigError

__all__ = [
    "FALSE_WORDS",
    "FieldParser",
    "TRUE_WORDS",
    "as_bool",
    "as_choice",
    "as_int",
    "as_number",
    "as_str",
    "bool_word",
    "check_known",
    "load_mapping_config",
    "parse_fields",
]

#: A field's parser: ``parse(name, value)`` returns the value to keep or raises
#: :class:`TrackerConfigError` naming ``name``, the value and what was expected.
FieldParser = Callable[[str, object], object]

#: The words a yes/no setting accepts (case-insensitive, surrounding spaces ignored).
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def load_mapping_config(text: str, example: str) -> dict[str, Any]:
    """Parse ``text`` as a YAML/JSON mapping; errors show ``example`` as the expected form."""
    import yaml  # only where a mapping config is read: the job-side env parsing needs none

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


def check_known(
    given: Iterable[str],
    known: Collection[str],
    message: Callable[[list[str]], str] | None = None,
) -> None:
    """Raise if ``given`` holds a key not in ``known``: ``message(sorted unknown keys)``, by
    default ``unknown key(s) [...] in mapping config; known: a, b``."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        text = (
            message(unknown)
            if message is not None
            else f"unknown key(s) {unknown} in mapping config; known: {', '.join(known)}"
        )
        raise TrackerConfigError(text)


def parse_fields(
    options: Mapping[str, object],
    parsers: Mapping[str, FieldParser],
    *,
    skip_none: bool = True,
) -> dict[str, Any]:
    """Each given option through its field's parser (call :func:`check_known` first).

    ``skip_none``: an option given as ``None`` (YAML ``null``, an empty query value is not
    ``None``) is left out, so the field keeps its default; otherwise its parser decides.
    """
    return {
        name: parsers[name](name, value)
        for name, value in options.items()
        if not (skip_none and value is None)
    }


def bool_word(value: object) -> bool | None:
    """A yes/no value: a bool, or one of :data:`TRUE_WORDS`/:data:`FALSE_WORDS`; else ``None``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None


# --- field parsers (messages: "option 'NAME'=VALUE: expected ...") ---


def as_str(name: str, value: object) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise TrackerConfigError(f"option {name!r} must be a non-empty string")
    return value.strip()


def as_bool(name: str, value: object) -> bool:
    """A bool or a yes/no word (``1/true/yes/on``, ``0/false/no/off``)."""
    found = bool_word(value)
    if found is None:
        raise TrackerConfigError(f"option {name!r}={value!r}: expected true or false")
    return found


def as_number(name: str, value: object, low: float, high: float) -> float:
    """A number in ``[low, high]`` (a number or its text; not a bool, not NaN)."""
    try:
        number = float(str(value)) if not isinstance(value, bool) else float("nan")
    except ValueError:
        number = float("nan")
    if not low <= number <= high:  # NaN fails too
        raise TrackerConfigError(f"option {name!r}={value!r}: expected a number in [{low}, {high}]")
    return number


def as_int(name: str, value: object, low: int, high: int) -> int:
    """A whole number in ``[low, high]``."""
    number = as_number(name, value, low, high)
    if number != int(number):
        raise TrackerConfigError(f"option {name!r}={value!r}: expected a whole number")
    return int(number)


def as_choice(name: str, value: object, choices: Collection[str]) -> str:
    """One of ``choices`` (a non-empty string first)."""
    text = as_str(name, value)
    if text not in choices:
        raise TrackerConfigError(f"option {name!r}={text!r}: expected {' or '.join(choices)}")
    return text
