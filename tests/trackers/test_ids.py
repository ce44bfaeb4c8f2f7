"""Run-id encoding: the fast base32 decoder agrees with :mod:`base64` on every input."""

from __future__ import annotations

import base64
import binascii
import random

import pytest

from trackers.ids import _b32decode, decode_run_id, decode_run_ids, encode_run_id


def test_fast_base32_decoder_agrees_with_base64_on_valid_names() -> None:
    rng = random.Random(20261205)
    for _ in range(5000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        assert _b32decode(base64.b32encode(raw).decode("ascii")) == raw


@pytest.mark.parametrize(
    "name",
    [
        *("A", "AAAAAAA=", "AAAAAA==", "ab", "========", "MY======", "MZ======", "A=AAAAAA"),
        # characters int(..., 32) would read if they were let through: digits 0, 1, 8, 9,
        # lowercase, '_', whitespace, and non-ASCII digits
        *("AAAAAAA0", "AAAAAAA1", "AAAAAAA8", "aaaaaaaa", "AAAA_AAA", " AAAAAAA", "AAAAAAA\n"),
        *("é", "AAAAAAA\u0663", "AAAAAAAA" * 3),
    ],
)
def test_fast_base32_decoder_accepts_and_refuses_what_base64_does(name: str) -> None:
    try:
        expected: object = base64.b32decode(name)
    except (binascii.Error, ValueError):  # binascii.Error and UnicodeError are ValueErrors
        expected = "refused"
    try:
        found: object = _b32decode(name)
    except (binascii.Error, ValueError):
        found = "refused"
    assert found == expected


@pytest.mark.parametrize(
    "run_id", ["local_cwd://torchx/a-1", "slurm://s/123", "kubernetes://ns/é-日本", "x" * 155]
)
def test_run_ids_round_trip_through_their_names(run_id: str) -> None:
    assert decode_run_id(encode_run_id(run_id)) == run_id


def test_names_that_are_not_encoded_ids_decode_to_none() -> None:
    assert decode_run_id(".catalog") is None
    assert decode_run_id(".tmp") is None
    assert decode_run_id("") is None


def test_a_listing_decodes_at_once_as_name_by_name() -> None:
    rng = random.Random(20261205)
    alphabet = "abcxyz-_/:.~0189é日\udcff"
    ids = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))) for _ in range(500)]
    ascii_ids = [f"local_cwd://torchx/r-{i}" for i in range(500)]
    for listing in ([encode_run_id(i) for i in ascii_ids], [encode_run_id(i) for i in ids]):
        assert decode_run_ids(listing) == [decode_run_id(n) for n in listing]
    assert decode_run_ids([encode_run_id(i) for i in ids]) == ids


@pytest.mark.parametrize(
    "bad",
    [".catalog", ".tmp-0f", "A=AAAAAA", "AAAAAAA", "aaaaaaaa", "========", "AAAAAAA0", "é"],
)
def test_a_listing_with_names_that_are_not_ids_decodes_each_as_alone(bad: str) -> None:
    good = [encode_run_id(f"local_cwd://torchx/r-{i}") for i in range(20)]
    listing = [*good[:10], bad, *good[10:]]
    expected = [decode_run_id(n) for n in listing]
    assert decode_run_ids(listing) == expected
    assert expected[10] is None and None not in expected[:10] + expected[11:]


def test_an_empty_listing_decodes_to_nothing() -> None:
    assert decode_run_ids([]) == []
