"""Page tokens and the pager every List RPC uses."""

import pytest

from services.common.errors import InvalidArgument
from services.common.paging import (
    LIST,
    ListKind,
    Pager,
    decode_token,
    encode_token,
    token_number,
    token_time,
)
from services.common.validation import Checker


def test_tokens_round_trip() -> None:
    assert decode_token(encode_token("2026-11-25T00:00:00+00:00", "u1"), 2) == [
        "2026-11-25T00:00:00+00:00",
        "u1",
    ]


def test_a_pager_checks_the_size_fetches_one_more_and_tokens_the_last_row_kept() -> None:
    c = Checker()
    pager = Pager(c, ListKind(default=2, maximum=3), 0, "")
    c.done()
    assert (pager.limit, pager.fetch, pager.after) == (2, 3, None)
    page, token = pager.page(["a", "b", "c"], lambda row: [row])
    assert page == ["a", "b"]
    following = Pager(Checker(), ListKind(default=2, maximum=3), 0, token)
    assert following.after == ["b"]
    assert pager.page(["a", "b"], lambda row: [row]) == (["a", "b"], "")
    assert pager.page([], lambda row: [row]) == ([], "")
    too_big = Checker()
    Pager(too_big, ListKind(default=2, maximum=3), 4, "")
    assert [v.field for v in too_big.violations] == ["page_size"]
    with pytest.raises(InvalidArgument):
        Pager(Checker(), LIST, 0, encode_token("a", "b"))  # two parts where one is expected
    with pytest.raises(InvalidArgument):
        token_number("12a")
    assert token_number(token_time("2026-01-01T00:00:00+00:00").strftime("%Y")) == 2026
