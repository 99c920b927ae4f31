"""Where cellbench keeps its cache: generated screens, checkpoints, embeddings, results.

``$CELLBENCH_HOME`` (default ``~/.cache/cellbench``) holds ``data/``, ``runs/``,
``embeddings/`` and ``results/``. Tests point it at a temporary directory.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def home() -> Path:
    root = os.environ.get("CELLBENCH_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "cellbench"
    return path


def data_dir() -> Path:
    return home() / "data"


def runs_dir() -> Path:
    return home() / "runs"


def embeddings_dir() -> Path:
    return home() / "embeddings"


def results_dir() -> Path:
    return home() / "results"


def resource(name: str) -> Path:
    """Path of a file shipped in ``cellbench/resources`` (reference data)."""
    return Path(str(resources.files("cellbench") / "resources" / name))


def compound_gene_truth_path() -> Path:
    return resource("compound_gene_interactions.csv")


def rxrx3_core_genes() -> list[str]:
    """The 735 gene knockouts of RxRx3-core (sorted)."""
    text = resource("rxrx3_core_genes.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def checkout_root() -> Path | None:
    """The repository checkout this package runs from (an editable install or the source
    tree), or None for an installed package: the folder above the package that has the
    project's ``pyproject.toml`` and ``leaderboard/``."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "leaderboard").is_dir():
        return root
    return None
