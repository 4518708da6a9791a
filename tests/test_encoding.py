"""The encodings providers share: canonical_b64decode (one spelling per byte string, as the
providers send it) and percent_decode (urllib's unquote_to_bytes, in C)."""

from __future__ import annotations

import base64
import doctest
import importlib
import re
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from paynotify import canonical_b64decode, percent_decode


@given(st.binary(min_size=1, max_size=300))
def test_decodes_what_standard_base64_encodes(data: bytes) -> None:
    assert canonical_b64decode(base64.b64encode(data).decode()) == data


@pytest.mark.parametrize(
    "text",
    ["", "AAF=", "AAE", "AAE==", "AA E=", "AAE=\n", "AA-_", "中文", "AAE=AAE="],
)
def test_refuses_every_other_spelling(text: str) -> None:
    assert canonical_b64decode(text) is None


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


@given(st.binary(max_size=200))
def test_percent_decode_is_unquote_to_bytes_on_every_form_a_provider_accepts(data: bytes) -> None:
    # Form decoding refuses a "%" not followed by two hex digits before decoding: the same holds here.
    assume(not _BAD_ESCAPE.search(data))
    assert percent_decode(data) == unquote_to_bytes(data)


@given(st.binary(max_size=60))
def test_percent_decode_reverses_quoting(data: bytes) -> None:
    assert percent_decode(quote_from_bytes(data, safe="").encode()) == data


@pytest.mark.parametrize("module", ["paynotify._encoding", "paynotify._options", "paynotify._result"])
def test_the_docstring_examples_run(module: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0
    assert failures == 0
