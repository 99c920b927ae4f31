"""cellbench: does a Cell Painting image encoder capture biology or batch effects?

A benchmark-first toolkit: one encoder registry, one pipeline
(embeddings -> wells -> alignment on controls -> perturbation map -> scores),
and the tables and figures of the CWA-MSN paper regenerated from it.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str):
    """``cellbench.evaluate`` on first use, without importing numpy/polars at ``import cellbench``.

    It is the module :mod:`cellbench.evaluate`, made callable: ``cellbench.evaluate(profiles,
    ...)`` runs :func:`cellbench.api.evaluate`, and ``from cellbench.evaluate import
    evaluate_arrays`` keeps working. Being one object, it is the same whether the submodule or
    the call comes first (an import of the submodule rebinds the package attribute to it)."""
    if name == "evaluate":
        import importlib

        return importlib.import_module("cellbench.evaluate")
    raise AttributeError(f"module 'cellbench' has no attribute {name!r}")
