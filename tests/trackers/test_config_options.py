"""The config-option toolkit: one set of yes/no words, unknown keys refused, fields parsed.

The backends' own config tests (fsspec, S3, MLflow, ``tests/launcher_plugin``) check their
messages end to end; these pin the shared pieces they are built from.
"""

from __future__ import annotations

import pytest

from trackers.backends.fsspec import FsspecConfig
from trackers.backends.mlflow import MLflowConfig
from trackers.backends.s3 import S3Config
from trackers.config_options import (
    as_bool,
    as_choice,
    as_int,
    bool_word,
    check_known,
    load_mapping_config,
    parse_fields,
)
from trackers.env import bool_from_env
from trackers.errors import TrackerConfigError

YES = ["1", "true", "TRUE", " yes ", "on", True]
NO = ["0", "false", "No", "off ", False]


@pytest.mark.parametrize("word", YES)
def test_yes_words(word: object) -> None:
    assert bool_word(word) is True and as_bool("x", word) is True


@pytest.mark.parametrize("word", NO)
def test_no_words(word: object) -> None:
    assert bool_word(word) is False and as_bool("x", word) is False


@pytest.mark.parametrize("word", ["", "2", "maybe", "y", None, 1.5])
def test_other_values_are_not_yes_or_no(word: object) -> None:
    assert bool_word(word) is None
    with pytest.raises(TrackerConfigError, match=r"option 'x'=.*: expected true or false"):
        as_bool("x", word)


@pytest.mark.parametrize("word", [w for w in YES + NO if isinstance(w, str)])
def test_env_and_s3_accept_the_same_words(word: str) -> None:
    expected = bool_word(word)
    assert bool_from_env("FLAG", {"FLAG": word}) is expected
    assert S3Config.parse(f"s3://bucket/p?strict={word.strip()}").strict is expected


def test_env_unset_or_empty_is_no_and_a_bad_word_names_the_variable() -> None:
    assert bool_from_env("FLAG", {}) is False and bool_from_env("FLAG", {"FLAG": " "}) is False
    with pytest.raises(TrackerConfigError, match=r"FLAG='maybe': expected one of 1/true/yes/on"):
        bool_from_env("FLAG", {"FLAG": "maybe"})


def test_check_known_default_and_own_message() -> None:
    check_known({"a": 1}, ("a", "b"))
    with pytest.raises(
        TrackerConfigError, match=r"unknown key\(s\) \['c', 'd'\] in mapping config; known: a, b"
    ):
        check_known({"d": 1, "c": 2, "a": 3}, ("a", "b"))
    with pytest.raises(TrackerConfigError, match=r"^nope \['c'\]$"):
        check_known(["c"], ("a",), lambda unknown: f"nope {unknown}")


def test_parse_fields_runs_each_parser_and_skips_none_unless_told() -> None:
    parsers = {"n": lambda name, v: as_int(name, v, 1, 5), "flag": as_bool}
    assert parse_fields({"n": "3", "flag": "yes", "x": None}, {**parsers, "x": as_bool}) == {
        "n": 3,
        "flag": True,
    }
    with pytest.raises(TrackerConfigError, match=r"option 'flag'=None: expected true or false"):
        parse_fields({"flag": None}, parsers, skip_none=False)
    with pytest.raises(TrackerConfigError, match=r"option 'n'='9': expected a number in \[1, 5\]"):
        parse_fields({"n": "9"}, parsers)


def test_as_choice_names_the_choices() -> None:
    assert as_choice("mode", " adaptive ", ("standard", "adaptive")) == "adaptive"
    with pytest.raises(
        TrackerConfigError, match=r"option 'mode'='fast': expected standard or adaptive"
    ):
        as_choice("mode", "fast", ("standard", "adaptive"))


def test_mapping_loader_refuses_what_is_not_a_mapping() -> None:
    assert load_mapping_config("{a: 1, 2: b}", "{a: 1}") == {"a": 1, "2": "b"}
    with pytest.raises(TrackerConfigError, match=r"expected a mapping such as \{a: 1\}"):
        load_mapping_config("[1, 2]", "{a: 1}")
    with pytest.raises(TrackerConfigError, match=r"not a valid YAML/JSON mapping .*expected e.g."):
        load_mapping_config("{a: [}", "{a: 1}")


@pytest.mark.parametrize(
    ("parse", "config", "message"),
    [
        (
            FsspecConfig.parse,
            "{url: /x, bad: 1}",
            "unknown key(s) ['bad'] in mapping config; known: url, storage_options",
        ),
        (
            MLflowConfig.parse,
            "{bad: 1}",
            "unknown key(s) ['bad'] in mapping config; known: uri, experiment",
        ),
        (MLflowConfig.parse, "{strict: 'yes'}", "'strict' must be true or false, got 'yes'"),
        (MLflowConfig.parse, "{strict: null}", "'strict' must be true or false, got None"),
        (MLflowConfig.parse, "{experiment: ''}", "'experiment' must be a non-empty string, got ''"),
        (
            S3Config.parse,
            "{url: s3://b, bad: 1}",
            "unknown option(s) ['bad']; known: url, cache, connect_timeout",
        ),
        (
            S3Config.parse,
            "s3://b?retry_mode=x",
            "option 'retry_mode'='x': expected standard or adaptive",
        ),
    ],
)
def test_backends_keep_their_messages(parse: object, config: str, message: str) -> None:
    with pytest.raises(TrackerConfigError) as e:
        parse(config)  # type: ignore[operator]
    assert message in str(e.value)


def test_mlflow_flags_take_yaml_booleans_only_and_keep_defaults() -> None:
    assert MLflowConfig.parse("{strict: yes, upload_artifacts: false}").strict is True
    assert MLflowConfig.parse("{uri: ' http://127.0.0.1:5000 ', experiment: null}") == MLflowConfig(
        uri="http://127.0.0.1:5000"
    )
