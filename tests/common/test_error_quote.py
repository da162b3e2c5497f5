from __future__ import annotations

from clawgate.common.errors import MESSAGE_MAX_CHARS, PARAM_MAX_CHARS, ApiError, quote


def test_quote_keeps_short_values_and_cuts_long_ones_with_their_length() -> None:
    assert quote("user") == "'user'"
    assert quote(42) == "42"
    long = quote("x" * 70_000)
    assert long.startswith("'xxx") and long.endswith("…' (70000 characters)")
    assert len(long) < 100


def test_error_text_is_capped_whatever_a_caller_puts_in_it() -> None:
    err = ApiError(400, "bad: " + "y" * 100_000, param="p" * 10_000)
    assert len(err.message) == MESSAGE_MAX_CHARS and err.message.endswith("…")
    assert err.param is not None and len(err.param) == PARAM_MAX_CHARS
    size = sum(len(v) for _, v in err.trailing_metadata())
    assert size < 8 * 1024
