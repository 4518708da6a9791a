"""canonical_b64decode: one spelling per byte string, as the providers send it."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paynotify import canonical_b64decode


@given(st.binary(min_size=1, max_size=300))
def test_decodes_what_standard_base64_encodes(data: bytes) -> None:
    assert canonical_b64decode(base64.b64encode(data).decode()) == data


@pytest.mark.parametrize(
    "text",
    ["", "AAF=", "AAE", "AAE==", "AA E=", "AAE=\n", "AA-_", "中文", "AAE=AAE="],
)
def test_refuses_every_other_spelling(text: str) -> None:
    assert canonical_b64decode(text) is None
