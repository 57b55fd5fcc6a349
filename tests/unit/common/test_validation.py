import base64

import pytest

from loyalty.ledger.v1 import ledger_pb2
from services.common.errors import UNDECODABLE, InvalidArgument
from services.common.paging import (
    decode_token,
    encode_token,
)
from services.common.validation import (
    MAX_SECONDS,
    Checker,
    ascii_number,
    check_request,
    identifier_problem,
    structural_violations,
    text_problem,
)


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
    assert text_problem("alice", 128) is None
    assert text_problem("", 128) == "is required"
    assert text_problem("", 128, required=False) is None
    assert text_problem("a" * 129, 128) == "must be at most 128 characters"
    assert text_problem("a\x00b", 128, required=False) == "must not contain NUL characters"


def test_a_checker_reports_every_problem_at_once_under_its_prefix() -> None:
    c = Checker("rule")
    c.require(True, "ok", "never reported")
    assert not c.require(False, "kind", "must be known")
    c.text("title", "", 10)
    c.points("points", 0)
    assert c.number("id", "²", "must be a number") == 0
    with pytest.raises(InvalidArgument) as raised:
        c.done()
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("rule.kind", "must be known"),
        ("rule.title", "is required"),
        ("rule.points", "must be > 0"),
        ("rule.id", "must be a number"),
    ]
    Checker().done()  # nothing failed: no error


def test_identifiers_refuse_control_and_bidi_characters() -> None:
    assert identifier_problem("order-42", 128) is None
    assert identifier_problem("订单-42", 128) is None
    assert identifier_problem("abc\u202etxt", 128) == (
        "must not contain control or formatting characters"
    )
    assert identifier_problem("a\nb", 128) is not None
    assert identifier_problem("a\x00b", 128) == "must not contain NUL characters"
    assert identifier_problem("", 128) == "is required"
    assert identifier_problem("x" * 129, 128) == "must be at most 128 characters"
    assert identifier_problem("   ", 128) == "must not be blank"
    assert identifier_problem("\u3000", 128) == "must not be blank"  # an ideographic space
    assert identifier_problem(" a ", 128) is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("9" * 18, 10**18 - 1),
        *[(text, None) for text in ("9" * 19, "", "²", "١٢", "１２", "-1", "+1", " 1", "1_0")],
    ],
)
def test_numbers_are_ascii_digits_only(text: str, number: int | None) -> None:
    assert ascii_number(text) == number


def test_structural_checks_name_nested_timestamps_and_unknown_enums() -> None:
    request = ledger_pb2.CreditRequest(kind=99)  # type: ignore[arg-type]
    request.expire_time.seconds = 10**12
    request.mature_time.nanos = -1
    violations = {v.field: v.description for v in structural_violations(request)}
    assert set(violations) == {"kind", "expire_time", "mature_time"}
    assert "0001-01-01" in violations["expire_time"]
    assert "nanos" in violations["mature_time"]
    ok = ledger_pb2.CreditRequest(kind=ledger_pb2.TRANSFER_KIND_EARN)
    ok.expire_time.seconds = MAX_SECONDS
    assert structural_violations(ok) == []


def test_undecodable_requests_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_request(UNDECODABLE)
    assert [v.field for v in caught.value.violations] == ["request"]


def test_structural_checks_reach_into_repeated_fields() -> None:
    good = ledger_pb2.CreditRequest(request_id="r", user_id="u", amount=1, source="s")
    bad = ledger_pb2.CreditRequest(request_id="r2", user_id="u", amount=1, source="s")
    bad.expire_time.nanos = 10**9
    batch = ledger_pb2.PostBatchRequest(
        operations=[ledger_pb2.BatchOperation(credit=good), ledger_pb2.BatchOperation(credit=bad)]
    )
    assert [v.field for v in structural_violations(batch)] == ["operations[1].credit.expire_time"]
    batch.operations[1].credit.ClearField("expire_time")
    assert structural_violations(batch) == []
