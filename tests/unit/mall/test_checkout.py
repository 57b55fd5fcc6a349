from services.mall.checkout import covered_minor, max_points, refund_points
from services.mall.config import CheckoutPolicy

POLICY = CheckoutPolicy(
    currency="CNY",
    points_per_major_unit=100,
    max_share_percent=50,
    step_points=100,
    min_order_minor=1000,
)


def test_quote_respects_ratio_share_step_and_minimum() -> None:
    # 123.45 yuan: half is 61.72 yuan = 6172 points, in steps of 100 → 6100.
    assert max_points(POLICY, 12345, available=100_000) == 6100
    assert covered_minor(POLICY, 6100) == 6100  # 61.00 yuan
    assert max_points(POLICY, 12345, available=2550) == 2500  # the balance caps it
    assert max_points(POLICY, 999, available=100_000) == 0  # below the minimum order
    assert max_points(POLICY, 1000, available=99) == 0  # less than one step


def test_refunds_are_pro_rata_and_add_up() -> None:
    assert refund_points(6100, 12345, 12345) == 6100
    first = refund_points(6100, 12345, 4000)
    assert first == 1976  # floor(6100 * 4000 / 12345)
    # Cumulative rounding: refunding the rest returns exactly what is left.
    assert refund_points(6100, 12345, 12345) - first == 6100 - 1976
