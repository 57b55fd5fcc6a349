import base64

import pytest

from services.common.errors import InvalidArgument
from services.common.paging import decode_token, encode_token
from services.common.validation import storable


def test_tokens_round_trip() -> None:
    assert decode_token(encode_token("2026-11-25T00:00:00+00:00", "u1"), 2) == [
        "2026-11-25T00:00:00+00:00",
        "u1",
    ]


@pytest.mark.parametrize(
    "token",
    [
        "!!not-a-token",
        base64.urlsafe_b64encode(b"not json").decode(),
        encode_token("only-one"),  # wrong arity for 2
        encode_token("a", "b\x00"),
        base64.urlsafe_b64encode(b'[1, "x"]').decode(),
    ],
)
def test_anything_else_is_invalid(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, 2)
    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_storable_text() -> None:
    assert storable("alice", 128)
    assert not storable("", 128)
    assert storable("", 128, required=False)
    assert not storable("a" * 129, 128)
    assert not storable("a\x00b", 128, required=False)
