"""The size limits `make lint` holds: a function over 70 lines or a file over 600 is named."""

from pathlib import Path

from scripts import check_sizes


def test_a_long_function_and_a_long_file_are_named_and_the_tree_is_within_limits() -> None:
    body = "\n".join(f"    x = {n}" for n in range(70))
    long_function = f"def long():\n{body}\n\n\ndef short():\n    return 1\n"
    found = list(check_sizes.problems(Path("m.py"), long_function))
    assert found == ["m.py:1: long is 71 lines, more than 70"]
    long_file = "x = 1\n" * 601
    assert [p.split(":")[2].strip() for p in check_sizes.problems(Path("f.py"), long_file)] == [
        "601 lines, more than 600"
    ]
    assert check_sizes.main([]) == 0
