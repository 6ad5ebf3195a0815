"""The kernel's JSON reader: every limit it names, and that what it refuses is one typed
error with a reason safe to log or return."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eidcore import strictjson
from eidcore.strictjson import JsonRefused


def test_plain_documents_parse_as_json_does() -> None:
    doc = '{"a": [1, 2.5, "å", null, true], "b": {"c": "\\u00e5\\ud83d\\ude00"}}'
    assert strictjson.loads(doc) == json.loads(doc)
    assert strictjson.loads(doc.encode()) == json.loads(doc)


@pytest.mark.parametrize(
    "doc",
    [
        '{"orderRef": "\\ud800"}',  # a lone high surrogate, as an escape: ASCII on the wire
        '{"orderRef": "\\udfff"}',  # a lone low surrogate
        '{"a": "ok\\ude00x"}',
        '{"\\ud800": 1}',  # in a key
        '[["x", {"deep": ["\\udbff"]}]]',  # nested
        '"\\ud800"',  # the whole document
        '{"a": "\\ude00\\ud800"}',  # low before high: two lone ones, not a pair
    ],
)
def test_a_lone_surrogate_anywhere_is_refused(doc: str) -> None:
    with pytest.raises(JsonRefused) as refused:
        strictjson.loads(doc.encode())
    assert "surrogate" in refused.value.reason
    with pytest.raises(JsonRefused):
        strictjson.loads(doc)  # a str too


def test_an_escaped_backslash_before_u_is_not_an_escape() -> None:
    assert strictjson.loads(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}


def test_encoded_surrogates_are_not_utf8() -> None:
    with pytest.raises(JsonRefused, match="not UTF-8"):
        strictjson.loads(b'{"a": "\xed\xa0\x80"}')


def test_a_str_argument_is_checked_without_escapes_too() -> None:
    with pytest.raises(JsonRefused):
        strictjson.loads('{"a": "\ud800"}')


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ('{"a": ' + "9" * 41 + "}", "a number longer than 40 characters"),
        ('{"a": 1e999}', "a number out of range"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ("{", "not JSON"),
        ("", "not JSON"),
    ],
)
def test_limits_have_reasons(doc: str, reason: str) -> None:
    with pytest.raises(JsonRefused) as refused:
        strictjson.loads(doc.encode())
    assert refused.value.reason == reason


def test_depth_counts_containers_only() -> None:
    assert strictjson.loads(b"[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(JsonRefused):
        strictjson.loads(b"[[[[1]]]]", max_depth=3)
    assert strictjson.loads(b'"scalar"', max_depth=0) == "scalar"
    assert strictjson.loads(b'{"k": {"k": 1}}', max_depth=2) == {"k": {"k": 1}}


def test_is_text() -> None:
    assert strictjson.is_text("plain") and strictjson.is_text("Åsa 😀")
    assert not strictjson.is_text("a\ud800") and not strictjson.is_text("\udcff")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_what_json_writes_reads_back_or_is_refused_with_a_reason(value: object) -> None:
    """Anything ``json.dumps`` writes reads back equal, unless it breaks a named limit."""
    text = json.dumps(value)
    try:
        assert strictjson.loads(text.encode()) == value
    except JsonRefused as exc:
        assert exc.reason.startswith(("nested deeper", "a string that is not Unicode"))


@pytest.mark.parametrize(
    "doc", ['{"a": 1, "a": 2}', '{"x": {"k": 1, "k": 1}}', '[{"a": 1, "b": 2, "a": 3}]']
)
def test_a_key_twice_in_one_object_is_refused(doc: str) -> None:
    """Parsers disagree on which value wins; one that checks and one that uses could
    read different ones."""
    with pytest.raises(JsonRefused) as refused:
        strictjson.loads(doc.encode())
    assert refused.value.reason == "a key appears twice in one object"
    assert strictjson.loads(b'{"a": {"a": 1}, "b": [{"a": 2}]}') == {"a": {"a": 1}, "b": [{"a": 2}]}
