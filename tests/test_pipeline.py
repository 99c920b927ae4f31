"""`cellbench run` end to end on the tiny screens: results stored, re-runs reuse, bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellbench.cli import app
from cellbench.data import load_dataset
from cellbench.data.synthetic import SIMULATOR_VERSION
from cellbench.io import sha256_file
from cellbench.paths import home
from cellbench.pipeline import run_pipeline
from cellbench.results import ResultsStore

runner = CliRunner()


def test_reference_model_end_to_end_and_reuse():
    first = run_pipeline("oracle", preset="tiny", eval_seeds=3, progress=False)
    assert not first.reused
    assert set(first.records) >= {"gene_gene", "batch"}
    corum = first.records["gene_gene"].scores["CORUM"]
    assert 0.0 <= corum["recall_0.05_0.95"] <= 1.0 and corum["n_relationships"] > 0
    stored = ResultsStore().get("oracle", first.checkpoint, first.dataset, "gene_gene")
    assert stored is not None and stored.scores == json.loads(
        json.dumps(first.records["gene_gene"].scores)
    )
    # provenance: the screen's simulator and config hash, the embeddings by content and by a
    # path relative to the cellbench home (valid on another machine)
    assert stored.simulator_version == SIMULATOR_VERSION
    rel = stored.inputs["embeddings"]
    assert rel.startswith("embeddings/") and not Path(rel).is_absolute()
    assert stored.hashes["embeddings"] == sha256_file(home() / rel)
    screen = load_dataset("synthetic-rxrx3-core", size="tiny", seed=0)
    assert stored.hashes["data"] == screen.manifest["config_hash"]
    again = run_pipeline("oracle", preset="tiny", eval_seeds=3, progress=False)
    assert again.reused and again.records["gene_gene"] == stored


def test_trained_model_run_prints_row_and_verdict():
    result = runner.invoke(
        app, ["run", "--model", "cwa-msn", "--preset", "tiny", "--eval-seeds", "3", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "CWA-MSN" in result.output and "untrained ViT" in result.output
    assert "reported" in result.output  # the paper's rows are shown, labelled
    records = list(ResultsStore().iter_results(model="cwa-msn"))
    tasks = {r.task for r in records}
    assert {"gene_gene", "health"} <= tasks
    assert all(r.synthetic and r.provenance == "measured" for r in records)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--model", "cwa-mns"], "cwa-msn"),  # close-name suggestion
        (["run", "--model", "oracle", "--prototypes", "256"], "MSN"),
        (["run", "--model", "cwa-msn", "--preset", "quik"], "quick"),
        (["run", "--model", "cwa-msn", "--data", "jump"], "synthetic"),
    ],
)
def test_bad_input_is_refused_clearly(args, message):
    before = len(list(ResultsStore().iter_results()))
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(list(ResultsStore().iter_results())) == before


def test_two_checkpoints_with_one_file_name_are_two_results(tmp_path):
    """`--checkpoint A/model.pt` then `--checkpoint B/model.pt`: B is scored, not A's scores
    reported again as B's (results are keyed by the weights, not the file name)."""
    import shutil

    from _train_fakes import FakeDataset

    from cellbench.train.loop import train
    from cellbench.train.presets import resolve

    fake = FakeDataset(channels=("DNA", "ER", "RNA", "AGP", "Mito"))
    paths = []
    for seed, folder in ((0, "A"), (1, "B")):
        run = train(
            "cwa-msn",
            fake,
            resolve("tiny", {"max_steps": 0, "warmup_steps": 0}),
            seed=seed,
            out_dir=tmp_path / f"run{seed}",
            progress=False,
            health=False,
        )
        (tmp_path / folder).mkdir()
        paths.append(shutil.copy(run.model_path, tmp_path / folder / "model.pt"))
    a = run_pipeline(
        "cwa-msn", preset="tiny", checkpoint=str(paths[0]), eval_seeds=3, progress=False
    )
    b = run_pipeline(
        "cwa-msn", preset="tiny", checkpoint=str(paths[1]), eval_seeds=3, progress=False
    )
    assert not b.reused and a.checkpoint != b.checkpoint
    assert (
        a.records["gene_gene"].hashes["embeddings"] != b.records["gene_gene"].hashes["embeddings"]
    )
    again = run_pipeline(
        "cwa-msn", preset="tiny", checkpoint=str(paths[0]), eval_seeds=3, progress=False
    )
    assert again.reused and again.checkpoint == a.checkpoint
