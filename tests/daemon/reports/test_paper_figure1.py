"""The demo's Figure 1 reads as the paper's: batch sizes 1 to 64 and plain numbers on its axes."""

from __future__ import annotations

import matplotlib.pyplot as plt

from daemon.reports.paper import figure1
from policies.footprint.paper import PAPER_BATCH_SIZES, characterise


def test_axes_are_labelled_with_batch_sizes_and_plain_numbers() -> None:
    """The log axes were labelled 2^0 ... 2^6 and 3x10^0, 4x10^0, 6x10^0."""
    fig = figure1(list(characterise()))
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.get_xscale() == ax.get_yscale() == "log"
            xs = [t.get_text() for t in ax.get_xticklabels()]
            assert xs == [str(b) for b in PAPER_BATCH_SIZES]
            ys = [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text()]
            assert len(ys) >= 3
            for text in ys:
                float(text)  # "6", "10", "200": no "$\\mathdefault{6\\times10^{0}}$"
            assert ax.get_xlabel() == "batch size"
            assert ax.get_ylabel().endswith(("(s)", "(J)"))
    finally:
        plt.close(fig)
