"""The demo's Figure 1 reads as the paper's: batch sizes 1 to 64 and plain numbers on its axes;
both figures and the cell rows say which weight precision they show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from daemon.reports.paper import cell_rows, figure1, figure4
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


@pytest.mark.parametrize(
    ("precision", "fig1", "fig4"),
    [(None, "weights llama-1b fp32, llama-3b fp32, llama-7b fp16", "llama-1b at fp32"),
     ("int4", "weights llama-1b int4, llama-3b int4, llama-7b int4", "llama-1b at int4")],
)  # fmt: skip
def test_figures_and_rows_name_the_weight_precision_they_show(
    precision: str | None, fig1: str, fig4: str
) -> None:
    """``carbond paper --precision int4`` drew figures titled "paper setup" and tables that did
    not say the precision, indistinguishable from the paper's fp32/fp16 runs."""
    cells = list(characterise(precision=precision))
    for figure, expected in ((figure1(cells), fig1), (figure4(cells), fig4)):
        try:
            title = figure.get_suptitle()
            assert expected in title and "paper setup" not in title
        finally:
            plt.close(figure)
    wanted = {"llama-1b": "fp32", "llama-3b": "fp32", "llama-7b": "fp16"}
    assert all(r["precision"] == (precision or wanted[r["model"]]) for r in cell_rows(cells))
