"""The draw function alone: HMAC rolls follow the weights (chi-square), exhausted prizes are
never won, and an outcome is a pure function of seed, user and nonce."""

import secrets

from services.mall.lottery import choose, roll

TABLE = [("big", 1, True), ("medium", 9, True), ("small", 40, True)]
NO_PRIZE = 50
# Chi-square critical value for 3 degrees of freedom at p = 0.001.
CRITICAL = 16.27


def test_10000_draws_follow_the_weights() -> None:
    seed = bytes(range(32))  # fixed: the test is deterministic
    counts = {"big": 0, "medium": 0, "small": 0, "": 0}
    for nonce in range(1, 10_001):
        counts[choose(roll(seed, "user-1", nonce), TABLE, NO_PRIZE)[1]] += 1
    expected = {"big": 100, "medium": 900, "small": 4000, "": 5000}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < CRITICAL, counts


def test_an_exhausted_prize_falls_to_no_prize() -> None:
    seed = secrets.token_bytes(32)
    exhausted = [("big", 1, True), ("medium", 9, False), ("small", 40, True)]
    for nonce in range(1, 2001):
        value = roll(seed, "u", nonce)
        pick, prize = choose(value, exhausted, NO_PRIZE)
        assert prize != "medium"
        if 1 <= pick < 10:  # where "medium" sits in the table
            assert prize == ""
        assert choose(value, TABLE, NO_PRIZE)[0] == pick  # availability never moves the pick


def test_outcome_is_reproducible_and_depends_on_every_input() -> None:
    seed = secrets.token_bytes(32)
    assert roll(seed, "alice", 7) == roll(seed, "alice", 7)
    assert roll(seed, "alice", 7) != roll(seed, "alice", 8)
    assert roll(seed, "alice", 7) != roll(seed, "bob", 7)
    assert roll(seed, "alice", 7) != roll(secrets.token_bytes(32), "alice", 7)
