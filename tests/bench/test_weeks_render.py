"""bench.weeks' tables: a share that is float noise reads 0.0%, not -0.0%."""

from __future__ import annotations

from bench.weeks import _pct


def test_a_noise_share_has_no_minus_sign() -> None:
    assert _pct(-1e-17) == "0.0%"
    assert _pct(-0.012) == "-1.2%"
    assert _pct(None) == "—"
    assert _pct(0.196, sign=True) == "+19.6%"
