"""`bench report`: the paper's tables and figures from recorded runs, ours beside the published numbers.

`tables` (the paper's tables with ours beside them), `costs` (Tables 6 and 1's costs from profiles), `figures`,
`html` (self-contained pages) and `render` (a suite's page and the whole report folder, written whole or not at
all). Reads records, prediction PNGs and (for the qualitative figure) the dataset; never torch.
"""
from bench.report.figures import model_style, paper_tradeoff_points, spread_over_sequences
from bench.report.render import render_reports, render_suite
from bench.report.tables import IN_BAND, OUT_OF_BAND, Table, table1

__all__ = ["IN_BAND", "OUT_OF_BAND", "Table", "model_style", "paper_tradeoff_points", "render_reports", "render_suite",
           "spread_over_sequences", "table1"]
