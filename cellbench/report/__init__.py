"""Report layer: the paper's tables as data, the leaderboard, and the figures.

- :mod:`cellbench.report.paper` — Tables 1–5 of the CWA-MSN paper transcribed as data
  (provenance "reported"), the Table 2 z-score consistency check, Figure 1's ratios.
- :mod:`cellbench.report.store` — a tolerant reader of the results store.
- :mod:`cellbench.report.tables` — the leaderboard (measured rows over seeds, floor/ceiling
  rows, the reported block kept apart).
- :mod:`cellbench.report.figures` — Figure 1, Figure 3 and the ablation plots (matplotlib).
- :mod:`cellbench.report.render` — markdown / LaTeX rendering of small tables.
"""
