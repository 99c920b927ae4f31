"""``cellbench evaluate`` on small fixtures written in the real RxRx3-core file layout,
including every bad-input case (non-zero exit, a message naming problem and fix, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cellbench.cli import app
from cellbench.evaluate import evaluate_arrays, gene_gene_frame
from cellbench.metrics.compound_gene import load_truth
from cellbench.metrics.gene_gene import gene_gene_recall
from cellbench.schema import RXRX3_METADATA_COLUMNS, feature_columns

runner = CliRunner()
D = 8


def release(seed: int = 0, *, compounds: bool = True, genes: bool = True, stray: bool = True):
    """A tiny release in the real layout: metadata (RxRx3-core columns) + well features."""
    rng = np.random.default_rng(seed)
    truth = load_truth()
    top = truth.group_by("treatment").len().sort(["len", "treatment"], descending=[True, False])
    cpds = top["treatment"].head(8).to_list()
    gene_list = sorted(set(truth["gene_symbol"].to_list()))[:50]
    rows = []

    def add(exp, plate, i, gene, treatment, conc, ptype):
        address = f"{chr(65 + i // 24)}{i % 24 + 1:02d}"
        rows.append(
            (
                f"{exp}_{plate}_{address}",
                exp,
                plate,
                address,
                gene,
                treatment,
                "",
                conc,
                ptype,
                "HUVEC",
            )
        )

    if genes:
        for e in range(1, 4):
            exp = f"gene-{e:03d}"
            i = 0
            for g in gene_list:
                add(exp, 1, i, g, f"{g}_guide_{e}", "", "CRISPR")
                i += 1
            for _ in range(6):
                add(exp, 1, i, "EMPTY_control", "EMPTY_control", "", "CRISPR")
                i += 1
            add(exp, 1, i, "CRISPR_control", "CRISPR_control", "", "CRISPR")
    if compounds:
        for e in range(1, 3):
            exp = f"compound-{e:03d}"
            i = 0
            for c in cpds:
                for conc in ("0.1", "1.0", "10.0"):
                    add(exp, 1, i, "", c, conc, "COMPOUND")
                    i += 1
            if stray:
                add(exp, 1, i, "", cpds[0], "0.3", "COMPOUND")
                i += 1
            for _ in range(6):
                add(exp, 1, i, "", "EMPTY_control", "", "COMPOUND")
                i += 1
    md = pl.DataFrame(rows, schema=list(RXRX3_METADATA_COLUMNS), orient="row")
    md = md.sample(fraction=1.0, shuffle=True, seed=seed)  # rows in no particular order
    feats = rng.normal(size=(md.height, D)).astype(np.float32)
    return md, feats


def write_release(tmp: Path, md: pl.DataFrame, feats: np.ndarray, ids=None) -> tuple[Path, Path]:
    ids = md["well_id"].to_list() if ids is None else ids
    emb = pl.DataFrame({"well_id": ids}).hstack(
        pl.DataFrame(feats, schema=feature_columns(feats.shape[1]))
    )
    emb_path, md_path = tmp / "embeddings.parquet", tmp / "metadata_rxrx3_core.csv"
    emb.write_parquet(emb_path)
    md.write_csv(md_path)
    return emb_path, md_path


def invoke(emb, md, out, *extra):
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--embeddings",
            str(emb),
            "--metadata",
            str(md),
            "--out",
            str(out),
            "--seeds",
            "3",
            *extra,
        ],
    )
    res.text = " ".join(res.output.split())  # rich wraps long lines
    return res


def test_evaluate_writes_every_file(tmp_path):
    md, feats = release()
    emb, meta = write_release(tmp_path, md, feats)
    out = tmp_path / "out"
    res = invoke(emb, meta, out)
    assert res.exit_code == 0, res.output
    assert "gene-gene recall" in res.output and "CORUM" in res.output and "total" in res.output
    gg = pl.read_csv(out / "gene_gene.csv")
    assert gg.columns == ["source", "n_relationships", "recall_0.05_0.95", "recall_0.1_0.9"]
    cg = pl.read_csv(out / "compound_gene.csv")
    assert cg["concentration"].to_list() == ["0.1", "1.0", "10.0", "max"]
    for col in (
        "average_precision",
        "auc_roc",
        "ap_quantile_0.5",
        "ap_quantile_0.75",
        "ap_quantile_0.95",
    ):
        for suffix in ("", "_std", "_baseline", "_baseline_std"):
            assert col + suffix in cg.columns
    assert {"z_average_precision", "z_auc_roc"} <= set(cg.columns)
    assert (out / "batch.csv").exists()
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["align"] == "pca-centerscale" and result["config"]["null"] == "all"
    assert result["config"]["seeds"] == 3
    assert len(result["hashes"]["embeddings"]) == 64 and "numpy" in result["versions"]
    assert (
        result["map"]["n_noncanonical_dropped"] == 2
        and result["map"]["n_compound_controls_dropped"] == 12
    )
    assert {"read", "map", "gene_gene", "compound_gene", "batch", "write"} <= set(result["timings"])
    assert any("non-canonical" in w for w in result["warnings"])


def test_scores_equal_the_library_on_the_same_map(tmp_path):
    """The CLI's gene-gene numbers are those of the map built in-process (genes-only null)."""
    md, feats = release(1)
    emb, meta = write_release(tmp_path, md, feats)
    res = invoke(emb, meta, tmp_path / "o", "--null", "genes", "--align", "centerscale")
    assert res.exit_code == 0, res.output
    from cellbench.maps.build import build_map
    from cellbench.maps.labels import wells_from_rxrx3

    wells = wells_from_rxrx3(pl.read_csv(meta, infer_schema=False))
    order = {w: i for i, w in enumerate(md["well_id"].to_list())}
    X = feats[[order[w] for w in wells["well_id"].to_list()]]
    with pytest.warns(UserWarning):
        table, mf = build_map(X, wells, align="centerscale")
    genes = (table["perturbation_type"] == "CRISPR").to_numpy()
    expected = gene_gene_frame(
        gene_gene_recall(
            mf[genes],
            table.filter(pl.col("perturbation_type") == "CRISPR")["perturbation"].to_list(),
        )
    )
    got = pl.read_csv(tmp_path / "o" / "gene_gene.csv")
    assert got.equals(expected.select(got.columns))


@pytest.mark.parametrize("align", ["centerscale", "tvn", "spherize", "none"])
def test_every_alignment_runs(tmp_path, align):
    md, feats = release(2)
    emb, meta = write_release(tmp_path, md, feats)
    res = invoke(emb, meta, tmp_path / "o", "--align", align, "--quiet")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "results.json").read_text())["config"]["align"] == align


def test_map_without_compounds_scores_genes_and_says_so(tmp_path):
    md, feats = release(3, compounds=False)
    emb, meta = write_release(tmp_path, md, feats)
    res = invoke(emb, meta, tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "skipped compound_gene" in res.text
    assert not (tmp_path / "o" / "compound_gene.csv").exists()
    assert (tmp_path / "o" / "gene_gene.csv").exists()


def test_map_without_genes_says_so():
    md, feats = release(4, genes=False)
    out = evaluate_arrays(md["well_id"].to_list(), feats, md, seeds=2)
    assert "gene_gene" in out["skipped"] and "compound_gene" in out["skipped"]


def _bad(tmp_path, mutate):
    md, feats = release(5)
    ids = md["well_id"].to_list()
    md, feats, ids = mutate(md, feats, ids)
    emb, meta = write_release(tmp_path, md, feats, ids)
    return emb, meta


def _subset(md, f, ids, keep):
    mask = (
        md.select(
            keep
            | (pl.col("treatment") == "EMPTY_control") & (pl.col("experiment_name") == "gene-001")
        )
        .to_series()
        .to_numpy()
    )
    return md.filter(mask), f[mask], [i for i, k in zip(ids, mask, strict=True) if k]


BAD_CASES = {
    "nan": (
        lambda md, f, ids: (
            md,
            np.where(np.arange(len(f))[:, None] == 3, np.nan, f).astype(np.float32),
            ids,
        ),
        "NaN",
    ),
    "inf": (
        lambda md, f, ids: (
            md,
            np.where(np.arange(len(f))[:, None] == 5, np.inf, f).astype(np.float32),
            ids,
        ),
        "inf",
    ),
    "duplicate ids": (lambda md, f, ids: (md, f, ids[:-1] + ids[:1]), "duplicate well ids"),
    "not lined up": (lambda md, f, ids: (md, f, ids[:-1] + ["gene-999_1_Z99"]), "do not line up"),
    "batch without controls": (
        lambda md, f, ids: (
            md.with_columns(
                pl.when(
                    (pl.col("experiment_name") == "gene-002")
                    & (pl.col("treatment") == "EMPTY_control")
                )
                .then(pl.lit("CRISPR_control"))
                .otherwise(pl.col("treatment"))
                .alias("treatment")
            ),
            f,
            ids,
        ),
        "gene-002",
    ),
    "too few entities": (
        lambda md, f, ids: _subset(
            md,
            f,
            ids,
            (pl.col("experiment_name") == "gene-001") & (pl.int_range(pl.len()) % 4 == 0),
        ),
        "at least",
    ),
    "missing column": (
        lambda md, f, ids: (md.drop("perturbation_type"), f, ids),
        "perturbation_type",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_fails_cleanly_and_writes_nothing(tmp_path, case):
    mutate, needle = BAD_CASES[case]
    emb, meta = _bad(tmp_path, mutate)
    out = tmp_path / "out"
    res = invoke(emb, meta, out)
    assert res.exit_code != 0
    assert "error" in res.text and needle in res.text and "Fix" in res.text, res.output
    assert not out.exists() or not any(out.iterdir())


def test_missing_files_and_bad_options(tmp_path):
    md, feats = release(6)
    emb, meta = write_release(tmp_path, md, feats)
    res = invoke(tmp_path / "nope.parquet", meta, tmp_path / "o")
    assert res.exit_code != 0 and "does not exist" in res.text
    res = invoke(emb, meta, tmp_path / "o", "--seeds", "0")
    assert res.exit_code != 0 and "seeds" in res.text
    res = invoke(emb, meta, tmp_path / "o", "--align", "zca")
    assert res.exit_code != 0
    res = invoke(emb, meta, tmp_path / "o", "--sources", "CORUM,GO")
    assert (
        res.exit_code != 0
        and "unknown gene-gene annotation source" in res.text
        and "Fix" in res.text
    )
    bad_parquet = tmp_path / "table.parquet"
    pl.DataFrame({"id": ["a"], "x": [1.0]}).write_parquet(bad_parquet)
    res = invoke(bad_parquet, meta, tmp_path / "o")
    assert res.exit_code != 0 and "well_id" in res.text
    assert not (tmp_path / "o").exists()


def test_in_process_with_a_normalised_well_table_and_determinism():
    """The pipeline passes a WELL_COLUMNS table: same scores as the RxRx3-core metadata gives,
    and a second run gives identical numbers."""
    from cellbench.maps.labels import wells_from_rxrx3

    md, feats = release(7)
    ids = md["well_id"].to_list()
    a = evaluate_arrays(ids, feats, md, seeds=3)
    b = evaluate_arrays(ids, feats, wells_from_rxrx3(md), seeds=3)
    assert a["scores"] == b["scores"] and a["map"] == b["map"]
    assert set(a["scores"]) == {"gene_gene", "compound_gene", "batch"}


def test_float64_embeddings_and_non_numeric_features(tmp_path):
    from cellbench.evaluate import read_embeddings

    md, feats = release(8)
    emb, meta = write_release(tmp_path, md, feats.astype(np.float64))
    ids, X = read_embeddings(emb)
    assert X.dtype == np.float64 and X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(X, feats.astype(np.float64))
    assert ids.to_list() == md["well_id"].to_list()
    bad = pl.read_parquet(emb).with_columns(pl.col("feature_2").cast(pl.Utf8))
    bad.write_parquet(emb)
    res = invoke(emb, meta, tmp_path / "o")
    assert res.exit_code != 0 and "not numeric" in res.text and not (tmp_path / "o").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rerun_into_a_result_folder_replaces_it_as_a_set(tmp_path):
    from cellbench.evaluate import evaluate_files

    md, feats = release(7)
    emb, meta = write_release(tmp_path, md, feats)
    out = tmp_path / "out"
    evaluate_files(emb, meta, out, seeds=2)
    assert (out / "gene_gene.csv").exists()
    result = evaluate_files(emb, meta, out, seeds=2, tasks=["batch"])
    assert (
        sorted(p.name for p in out.iterdir())
        == sorted(result["files"])
        == ["batch.csv", "results.json"]
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_failed_write_leaves_the_old_results_whole(tmp_path, monkeypatch):
    import cellbench.evaluate as ev

    md, feats = release(8)
    emb, meta = write_release(tmp_path, md, feats)
    out = tmp_path / "out"
    ev.evaluate_files(emb, meta, out, seeds=2)
    before = _snapshot(out)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ev, "write_json_atomic", disk_full)
    with pytest.raises(OSError):
        ev.evaluate_files(emb, meta, out, seeds=3, align="centerscale")
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_out_folder_with_other_files_is_refused_before_scoring(tmp_path):
    md, feats = release(9)
    emb, meta = write_release(tmp_path, md, feats)
    res = invoke(emb, meta, tmp_path)  # the folder holding the inputs
    assert res.exit_code == 2 and "holds other files" in res.text and "Traceback" not in res.output
    assert emb.exists() and meta.exists()


def test_concurrent_writers_leave_one_complete_set(tmp_path):
    """Folders swapped in at the same time: the result is one writer's whole set."""
    import threading

    from cellbench.io import atomic_dir, write_text_atomic

    out = tmp_path / "out"
    barrier = threading.Barrier(6)
    errors = []

    def writer(k: int) -> None:
        try:
            with atomic_dir(out) as tmp:
                for name in ("a.csv", "b.csv", "c.csv")[: 1 + k % 3]:
                    write_text_atomic(tmp / name, str(k))
                barrier.wait()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files = _snapshot(out)
    k = int(next(iter(files.values())))
    assert files == {name: str(k).encode() for name in ("a.csv", "b.csv", "c.csv")[: 1 + k % 3]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_evaluate_processes_into_one_out_leave_one_complete_set(tmp_path):
    """Two real `cellbench evaluate` processes, different task sets, one --out: the folder ends
    as exactly one run's complete output, whose results.json lists exactly its files."""
    import json
    import subprocess
    import sys

    md, feats = release(7)
    emb, meta = write_release(tmp_path, md, feats)
    out = tmp_path / "out"
    base = [
        sys.executable,
        "-m",
        "cellbench",
        "evaluate",
        "--embeddings",
        str(emb),
        "--metadata",
        str(meta),
        "--out",
        str(out),
        "--seeds",
        "2",
        "--quiet",
    ]
    procs = [
        subprocess.Popen([*base, "--tasks", tasks], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for tasks in ("gene_gene,batch", "batch")
    ]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], [p.stderr.read().decode()[-500:] for p in procs]
    files = sorted(p.name for p in out.iterdir())
    listed = json.loads((out / "results.json").read_text())
    csvs = sorted(f for f in files if f.endswith(".csv"))
    assert csvs in (["batch.csv", "gene_gene.csv"], ["batch.csv"]), files
    assert sorted(set(listed["tasks"]) & {"gene_gene", "batch"}) == [c[:-4] for c in csvs]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", emb.name, meta.name])
