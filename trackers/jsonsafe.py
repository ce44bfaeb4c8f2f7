"""The one JSON encoder of tracked values: anything a job passes is stored, never raised.

Every write of ``AppRun`` goes through the spool encoding (:meth:`trackers.spool.Operation.encode`),
and every backend stores JSON (the record stores) or JSON text (MLflow params and tags), so this
module is where a value JSON cannot hold gets its fallback form. Plain JSON values take the fast
path (one ``json.dumps``); only a value that fails it is walked and rebuilt.

Fallback forms (documented in the README, "Values JSON cannot hold"):

* an object JSON has no type for (a set, a ``Path``, a NumPy array...): its ``repr``;
* an object whose ``repr`` raises: ``"<unrepresentable T: repr() raised E>"``;
* a mapping key that is not a string: numbers, booleans and ``None`` as ``json`` writes them
  (``1`` -> ``"1"``), any other key its ``repr`` (``(1, 2)`` -> ``"(1, 2)"``);
* a reference back to a list or mapping that contains it (a cycle): ``"<circular reference to
  dict>"``; nesting deeper than :data:`MAX_DEPTH`: ``"<nested deeper than 100 levels>"``;
* an integer too long for ``str`` (over 4300 digits): its hex text, ``"0x..."``;
* NaN and infinities stay numbers (``NaN``, ``Infinity``: Python's ``json``, TorchX's reader and
  ours read them back as floats);
* a string with lone surrogates (what Python gives for bytes that are not UTF-8, e.g. in
  ``os.environ``): kept exactly, as ``\\udcXX`` JSON escapes, where Python reads the JSON back
  (the spool, the fsspec and S3 stores); as ``\\xNN`` text where the reader needs valid Unicode
  (MLflow, the CLI's output) - ``surrogates="text"``;
* past :data:`MAX_RECORD_BYTES` of output (about 16 MiB) the rest of a list, mapping or string is
  dropped and replaced by one ``"<dropped: ...>"`` marker.

Each substitution is described in the ``notes`` the encoder returns, so the caller logs one line
naming the value.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

logger: logging.Logger = logging.getLogger(__name__)

#: Containers nested deeper than this are replaced by a marker.
MAX_DEPTH = 100
#: About how much JSON one value may produce; beyond it, the rest is dropped (with a marker).
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: At most this many substitutions are described in one log line.
MAX_NOTES = 5

Surrogates = Literal["keep", "text"]
_ENCODE_ERRORS = (TypeError, ValueError, RecursionError, UnicodeEncodeError, OverflowError)


def encode(
    value: object, *, where: str = "", surrogates: Surrogates = "keep"
) -> tuple[bytes, list[str]]:
    """``value`` as UTF-8 JSON, and notes on what took a fallback form (empty when nothing did).

    ``where`` names the value in the notes (e.g. ``add_metadata``).
    """
    try:
        data = json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")
        if len(data) <= MAX_RECORD_BYTES:
            return data, []
    except _ENCODE_ERRORS:  # UnicodeEncodeError: lone surrogates
        pass
    safe, notes = json_safe(value, where=where, surrogates=surrogates)
    # "keep": lone surrogates leave as \udcXX escapes, which Python's json reads back exactly
    text = json.dumps(safe, ensure_ascii=surrogates == "keep", allow_nan=True)
    return text.encode("utf-8"), notes


def dumps(value: object, *, where: str = "", surrogates: Surrogates = "keep") -> str:
    """:func:`encode` as text, logging the notes (one line) when a value took a fallback form."""
    data, notes = encode(value, where=where, surrogates=surrogates)
    log_fallbacks(notes)
    return data.decode("utf-8")


def log_fallbacks(notes: list[str]) -> None:
    """One warning line for the notes of one value (nothing when there are none)."""
    if notes:
        logger.warning(
            "tracking: stored in a fallback form (values JSON cannot hold; see the README, "
            '"Values JSON cannot hold"): %s',
            describe(notes),
        )


def json_safe(
    value: object, *, where: str = "", surrogates: Surrogates = "keep", finite: bool = False
) -> tuple[object, list[str]]:
    """A copy of ``value`` made of JSON types only (see the module docstring), and the notes.

    ``finite`` also turns NaN and infinities into the strings ``nan``, ``inf``, ``-inf`` (for
    output formats without them).
    """
    walk = _Walk(surrogates, finite)
    return walk.value(value, where, 0, frozenset()), walk.notes


def describe(notes: list[str]) -> str:
    """The notes as one line (the first :data:`MAX_NOTES`, then how many more)."""
    shown = "; ".join(notes[:MAX_NOTES])
    more = len(notes) - MAX_NOTES
    return shown + (f"; and {more} more" if more > 0 else "")


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_of(text: str) -> str:
    """``text`` with lone surrogates turned into ``\\xNN`` (escaped bytes) or ``\\udXXX``."""
    if _valid_unicode(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as e:  # noqa: BLE001 - any repr may raise anything
        try:
            kind = type(value).__qualname__
        except Exception:  # noqa: BLE001
            kind = "object"
        return f"<unrepresentable {kind}: repr() raised {type(e).__name__}>"


@dataclass
class _Walk:
    surrogates: Surrogates
    finite: bool
    notes: list[str] = field(default_factory=list)
    budget: int = MAX_RECORD_BYTES

    def note(self, where: str, what: str) -> None:
        self.notes.append(f"{where or 'the value'}: {what}")

    def text(self, text: str, where: str) -> str:
        if not _valid_unicode(text):
            if self.surrogates == "text":
                text = text_of(text)
                self.note(where, "bytes that are not UTF-8 stored as \\xNN text")
        if len(text) > self.budget:
            self.note(where, f"a string of {len(text)} characters dropped (over the size limit)")
            text = f"<dropped: str of {len(text)} characters, over the {_MIB} MiB record limit>"
        self.budget -= len(text) + 2
        return text

    def key(self, key: object, where: str) -> str:
        if isinstance(key, str):
            return self.text(key, where)
        if key is None or isinstance(key, bool | float):
            return self.text(json.dumps(key, allow_nan=True), where)
        if isinstance(key, int):
            return self.text(str(self.value(key, where, 0, frozenset())), where)
        text = _repr(key)
        self.note(where, f"key {text} is not a string, stored as its repr")
        return self.text(text, where)

    def value(self, value: object, where: str, depth: int, path: frozenset[int]) -> object:
        if value is None or isinstance(value, bool):
            self.budget -= 5
            return value
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, int):
            try:
                self.budget -= len(str(value)) + 2
            except ValueError:
                self.note(where, f"an integer of {value.bit_length()} bits stored as hex text")
                return self.text(hex(value), where)
            return int(value)
        if isinstance(value, float):
            self.budget -= len(repr(value)) + 2
            if self.finite and not math.isfinite(value):
                return str(value)
            return float(value)
        if isinstance(value, Mapping | list | tuple):
            if id(value) in path:
                self.note(where, "a circular reference")
                return f"<circular reference to {type(value).__name__}>"
            if depth >= MAX_DEPTH:
                self.note(where, f"nested deeper than {MAX_DEPTH} levels")
                return f"<nested deeper than {MAX_DEPTH} levels>"
            inner = path | {id(value)}
            if isinstance(value, Mapping):
                return self.mapping(value, where, depth, inner)
            return self.sequence(value, where, depth, inner)
        text = _repr(value)
        if not text.startswith("<unrepresentable "):
            self.note(where, f"a {type(value).__name__} stored as its repr")
        else:
            self.note(where, text)
        return self.text(text, where)

    def mapping(
        self, value: Mapping[object, object], where: str, depth: int, path: frozenset[int]
    ) -> dict[str, object]:
        out: dict[str, object] = {}
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            if self.budget <= 0:
                self.note(where, f"{len(items) - i} entries dropped (over the size limit)")
                out["<dropped>"] = f"{len(items) - i} more entries, over the {_MIB} MiB limit"
                break
            name = self.key(key, where)
            out[name] = self.value(item, f"{where}[{_repr(key)}]", depth + 1, path)
        return out

    def sequence(
        self, value: list[object] | tuple[object, ...], where: str, depth: int, path: frozenset[int]
    ) -> list[object]:
        out: list[object] = []
        for i, item in enumerate(value):
            if self.budget <= 0:
                self.note(where, f"{len(value) - i} items dropped (over the size limit)")
                out.append(f"<dropped: {len(value) - i} more items, over the {_MIB} MiB limit>")
                break
            out.append(self.value(item, f"{where}[{i}]", depth + 1, path))
        return out


_MIB = MAX_RECORD_BYTES // (1024 * 1024)
