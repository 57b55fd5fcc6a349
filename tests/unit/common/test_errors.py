"""What a caller is answered for what a handler raised: never INTERNAL for a peer's refusal,
a database blip, or a value the database refused."""

from __future__ import annotations

import asyncpg
import grpc

from services.common.errors import FailedPrecondition, RichError, answer_for, database_down
from services.common.ledger_client import HoldGone, InsufficientPoints, LedgerClient
from services.common.peers import PeerRefused, PeerUnavailable


def rich(code: grpc.StatusCode, reason: str) -> RichError:
    return RichError(code, "said the peer", reason, "ledger", {"available": "5"})


def test_a_peers_refusal_keeps_its_reason_and_code() -> None:
    answer = answer_for(PeerRefused("ledger", rich(grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND")))
    assert (answer.code, answer.reason) == (grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND")
    assert answer.metadata == {"available": "5", "peer": "ledger"}
    # The peer's INVALID_ARGUMENT is not the caller's mistake: the call cannot be done as asked.
    bad = answer_for(PeerRefused("ledger", rich(grpc.StatusCode.INVALID_ARGUMENT, "X")))
    assert bad.code == grpc.StatusCode.FAILED_PRECONDITION


def test_transient_and_unknown_outcomes_are_unavailable() -> None:
    client = LedgerClient("127.0.0.1:1")
    for code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,  # the peer may have applied it: retried, never compensated
    ):
        error = client.classify(rich(code, ""))
        assert isinstance(error, PeerUnavailable)
        assert answer_for(error).reason == "DEPENDENCY_UNAVAILABLE"
    assert isinstance(
        client.classify(rich(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")),
        InsufficientPoints,
    )
    assert isinstance(
        client.classify(rich(grpc.StatusCode.FAILED_PRECONDITION, "HOLD_EXPIRED")), HoldGone
    )


def test_database_failures_are_unavailable_even_when_wrapped() -> None:
    try:
        try:
            raise asyncpg.AdminShutdownError("terminating connection")
        except asyncpg.AdminShutdownError:
            # What asyncpg raises leaving a transaction on a connection that went away.
            raise asyncpg.InterfaceError("the underlying connection is closed") from None
    except asyncpg.InterfaceError as wrapped:
        assert wrapped.__context__ is not None
        answer = answer_for(wrapped)
    assert (answer.code, answer.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")


def test_a_value_the_database_refused_is_invalid_argument() -> None:
    answer = answer_for(asyncpg.CharacterNotInRepertoireError("invalid byte sequence: 0x00"))
    assert (answer.code, answer.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_business_errors_pass_through_and_bugs_are_internal() -> None:
    refusal = FailedPrecondition("OUT_OF_STOCK", "none left")
    assert answer_for(refusal) is refusal
    assert answer_for(RuntimeError("a bug")).code == grpc.StatusCode.INTERNAL


def test_a_connection_closed_under_a_rolled_back_refusal_is_the_database_down() -> None:
    """A refusal raised inside a transaction to roll it back, when the database went away
    meanwhile (a failover), fails the transaction's exit: that is UNAVAILABLE, not a bug."""

    class Refused(Exception):
        pass

    closed = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    try:
        try:
            raise Refused("OUT_OF_STOCK")
        except Refused:
            raise closed from None
    except asyncpg.InterfaceError as exc:
        assert database_down(exc)
    assert not database_down(asyncpg.InterfaceError("cannot use Connection.transaction()"))
