"""The demo's Figure 4 draws each part of a stacked bar in proportion (issue 14 item 7)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Rectangle

from daemon.reports.paper import figure4
from policies.footprint.paper import characterise


def test_stacked_bars_are_on_linear_axes_in_proportion() -> None:
    fig = figure4(list(characterise()))
    try:
        shares = []
        for ax in fig.axes:
            assert ax.get_yscale() == "linear"  # a log axis inflates the bottom part
            by_x: dict[float, list[Rectangle]] = {}
            for bar in (p for p in ax.patches if isinstance(p, Rectangle)):
                by_x.setdefault(round(bar.get_x(), 6), []).append(bar)
            pairs = [pair for pair in by_x.values() if len(pair) == 2]
            assert pairs
            for embodied, operational in pairs:
                assert operational.get_y() == pytest.approx(embodied.get_height())  # stacked
                total = embodied.get_height() + operational.get_height()
                if total > 0:
                    shares.append(embodied.get_height() / total)
            assert any(t.get_text().endswith("%") for t in ax.texts)  # shares written on bars
        # the dirty grids' 1-2 % embodied share is drawn as 1-2 % of the bar's height
        assert min(shares) < 0.03
    finally:
        plt.close(fig)
