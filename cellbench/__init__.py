"""cellbench: does a Cell Painting image encoder capture biology or batch effects?

A benchmark-first toolkit: one encoder registry, one pipeline
(embeddings -> wells -> alignment on controls -> perturbation map -> scores),
and the tables and figures of the CWA-MSN paper regenerated from it.
"""

__version__ = "0.1.0"
