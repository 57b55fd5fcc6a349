import jwt
import pytest

from gateway import token
from gateway.settings import DEV_SECRET


def test_mints_a_token_with_scopes_and_expiry(capsys: pytest.CaptureFixture[str]) -> None:
    assert token.main(["ops", "--scope", "admin", "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), DEV_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["scope"], claims["exp"] - claims["iat"]) == ("ops", "admin", 60)


def test_refuses_unknown_scopes_and_explains_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        token.main(["alice", "superuser"])
    assert exited.value.code == 2
    assert "unknown scope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        token.main(["--help"])
    assert exited.value.code == 0
    assert "--scope" in capsys.readouterr().out


def test_mints_an_operator_with_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert token.main(["ana", "--role", "finance", "--role", "viewer"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), DEV_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["roles"], "scope" in claims) == (
        "ana",
        ["finance", "viewer"],
        False,
    )
    with pytest.raises(SystemExit):
        token.main(["ana", "--role", "superuser"])
