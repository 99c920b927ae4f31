"""Results store: round trip, skip-what-is-done, path safety, two concurrent writer processes,
malformed records refused, run fields stored once, the earlier on-disk format read identically."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from cellbench.errors import CellbenchError, InputError
from cellbench.results import (
    ResultRecord,
    ResultsStore,
    build_records,
    records_from_evaluation,
    weights_key,
)


def _record(
    model="random",
    checkpoint="final",
    dataset="synthetic-quick",
    task="gene_gene",
    value=0.1,
    **extra,
):
    return {
        "model": model,
        "checkpoint": checkpoint,
        "dataset": dataset,
        "task": task,
        "scores": {"CORUM": value},
        **extra,
    }


def test_put_get_has_iter(tmp_path):
    store = ResultsStore(tmp_path)
    assert not store.has("random", "final", "synthetic-quick", "gene_gene")
    assert store.get("random", "final", "synthetic-quick", "gene_gene") is None
    path = store.put(_record(synthetic=True, seed=0))
    assert path == tmp_path / "synthetic-quick" / "random" / "final" / "gene_gene.json"
    assert store.has("random", "final", "synthetic-quick", "gene_gene")
    got = store.get("random", "final", "synthetic-quick", "gene_gene")
    assert isinstance(got, ResultRecord)
    assert got.scores == {"CORUM": 0.1} and got.provenance == "measured" and got.synthetic is True
    assert got.created and got.config == {} and got.seed == 0
    store.put(_record(task="compound_gene", value=0.2, synthetic=True, seed=0))
    store.put(_record(model="cwa-msn", value=0.3))
    assert len(list(store.iter_results())) == 3
    assert [r.model for r in store.iter_results(task="gene_gene")] == ["cwa-msn", "random"]


@pytest.mark.parametrize(
    "bad", [{"model": "../escape"}, {"dataset": "a/b"}, {"task": "nonsense"}, {"checkpoint": ".."}]
)
def test_rejects_unsafe_keys(tmp_path, bad):
    with pytest.raises(InputError):
        ResultsStore(tmp_path).put(_record(**bad))
    assert not any(tmp_path.parent.glob("escape*"))


def test_rejects_incomplete_record(tmp_path):
    with pytest.raises(InputError, match="scores"):
        ResultsStore(tmp_path).put(
            {"model": "m", "checkpoint": "c", "dataset": "d", "task": "batch"}
        )


def _writer(root, worker, n):
    store = ResultsStore(root)
    for i in range(n):
        # a shared key both processes fight over, and keys of their own
        store.put(_record(model="shared", value=worker * 1000 + i, config={"pad": "x" * 20000}))
        store.put(_record(model=f"w{worker}", checkpoint=f"c{i}", value=i))


def test_two_concurrent_writers_never_corrupt(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 40)) for w in (1, 2)]
    for p in procs:
        p.start()
    store = ResultsStore(tmp_path)
    seen = 0
    while any(p.is_alive() for p in procs):  # read while they write: never a torn file
        rec = store.get("shared", "final", "synthetic-quick", "gene_gene")
        if rec is not None:
            assert len(rec.config["pad"]) == 20000
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    final = store.get("shared", "final", "synthetic-quick", "gene_gene")
    assert final.scores["CORUM"] in {1039, 2039}  # one writer's last record, whole
    records = list(store.iter_results())
    assert len(records) == 1 + 2 * 40
    for path in tmp_path.rglob("*"):  # task files and their runs' run.json
        if path.is_file():
            assert path.suffix == ".json", f"leftover temporary file {path}"
            json.loads(path.read_text())


def test_records_from_an_evaluation_result(tmp_path):
    result = {
        "config": {"align": "pca-centerscale", "null": "all", "seeds": 3},
        "map": {"n_rows": 50},
        "scores": {"gene_gene": {"CORUM": {"n_relationships": 4}}, "compound_gene": {"rows": []}},
        "timings": {"map": 1.0},
    }
    store = ResultsStore(tmp_path)
    for rec in records_from_evaluation(
        result, model="random", checkpoint="none", dataset="synthetic-quick", synthetic=True, seed=0
    ):
        store.put(rec)
    got = store.get("random", "none", "synthetic-quick", "gene_gene")
    assert got is not None and got.scores["CORUM"]["n_relationships"] == 4 and got.synthetic
    assert got.config["eval"]["null"] == "all" and got.config["map"] == {"n_rows": 50}
    assert store.has("random", "none", "synthetic-quick", "compound_gene")


def test_corrupt_result_files_are_warned_about_not_skipped_silently(tmp_path):
    from cellbench.report.store import load_results

    store = ResultsStore(tmp_path)
    store.put(_record())
    bad = store.path("cwa-msn", "final", "synthetic-quick", "gene_gene")
    bad.parent.mkdir(parents=True)
    bad.write_text('{"model": "cwa-msn", "scor')
    listed = store.path("oracle", "final", "synthetic-quick", "gene_gene")
    listed.parent.mkdir(parents=True)
    listed.write_text("[1, 2]")
    seen: list[str] = []
    assert [r.model for r in store.iter_results(on_corrupt=seen.append)] == ["random"]
    assert len(seen) == 2 and str(bad) in seen[0] and str(listed) in seen[1], seen
    assert all("delete it" in m for m in seen)
    with pytest.warns(UserWarning) as caught:
        assert len(list(store.iter_results())) == 1
    assert (
        len(caught) == 2
        and "cwa-msn" in str(caught[0].message)
        and "oracle" in str(caught[1].message)
    )
    warned: list[str] = []
    assert [r["model"] for r in load_results(tmp_path, warn=warned.append)] == ["random"]
    assert len(warned) == 2


LEADERBOARD = Path(__file__).resolve().parent.parent / "leaderboard" / "results"


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"payload": "x"}, "unknown fields"),
        ({"scores": [0.1]}, "scores must be a dict"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"synthetic": "yes"}, "synthetic must be a bool"),
        ({"provenance": "reported"}, "provenance"),
        ({"config": None}, "config must be a dict"),
    ],
)
def test_put_refuses_a_malformed_record(tmp_path, bad, field):
    with pytest.raises(InputError, match=field) as caught:
        ResultsStore(tmp_path).put(_record(**bad))
    assert "Fix:" in str(caught.value)
    assert not any(tmp_path.rglob("*.json"))


def test_run_fields_are_stored_once_per_run(tmp_path):
    store = ResultsStore(tmp_path)
    for task in ("gene_gene", "batch"):
        store.put(_record(task=task, seed=3, config={"preset": "quick"}, timings={"embed": 1.0}))
    run_dir = tmp_path / "synthetic-quick" / "random" / "final"
    assert sorted(p.name for p in run_dir.iterdir()) == ["batch.json", "gene_gene.json", "run.json"]
    assert json.loads((run_dir / "run.json").read_text())["config"] == {"preset": "quick"}
    task_file = json.loads((run_dir / "batch.json").read_text())
    assert set(task_file) == {"task", "scores", "created", "run"}
    assert store.get("random", "final", "synthetic-quick", "batch").timings == {"embed": 1.0}


def test_a_task_file_of_another_run_is_not_read_with_this_runs_config(tmp_path):
    store = ResultsStore(tmp_path)
    store.put(_record(task="batch", config={"preset": "quick"}))
    store.put(_record(task="gene_gene", config={"preset": "paper"}))  # a re-run, unfinished
    seen: list[str] = []
    assert [r.task for r in store.iter_results(on_corrupt=seen.append)] == ["gene_gene"]
    assert len(seen) == 1 and "batch.json" in seen[0] and "another run" in seen[0]
    with pytest.raises(CellbenchError, match="delete it"):
        store.get("random", "final", "synthetic-quick", "batch")


def test_the_builder_output_round_trips(tmp_path):
    evaluation = {
        "config": {"align": "pca-centerscale", "seeds": 3},
        "scores": {
            "gene_gene": {"CORUM": {"n_relationships": 4, "recall_0.05_0.95": 0.2}},
            "batch": {
                "batch_predictability": {"batch_accuracy": 0.4, "batch_chance": 0.25},
                "replicate_consistency": {"replicate_consistency": 0.7},
            },
        },
        "skipped": {"compound_gene": "no compounds"},
    }
    built = build_records(
        evaluation,
        model="cwa-msn",
        checkpoint="quick-seed1",
        dataset="synthetic-quick",
        tasks=("gene_gene", "compound_gene", "batch"),
        synthetic=True,
        seed=1,
        run_config={"preset": "quick", "train": {"num_prototypes": 64}},
        hashes={"data": "abc"},
        timings={"embed": 2.0},
        simulator_version="cellbench-sim-2.0",
        health={"effective_rank": 12.0},
    )
    assert list(built) == ["gene_gene", "compound_gene", "batch", "health"]
    assert built["compound_gene"].skipped == "no compounds" and built["compound_gene"].scores == {}
    batch = built["batch"].scores  # flat headline numbers, the diagnostics kept as details
    assert (batch["batch_predictability"], batch["batch_chance"]) == (0.4, 0.25)
    assert batch["replicate_consistency"] == 0.7 and "details" in batch
    store = ResultsStore(tmp_path)
    for record in built.values():
        store.put(record)
    for task, record in built.items():
        got = store.get("cwa-msn", "quick-seed1", "synthetic-quick", task)
        assert got == dataclasses.replace(record, created=got.created) and got.created
        assert ResultRecord.from_dict(got.to_dict()) == got
    assert built["gene_gene"].config_id == weights_key("cwa-msn", {"train": {"num_prototypes": 64}})
    assert built["gene_gene"].run_facts() == {"prototypes": 64.0}


def test_records_from_an_evaluation_have_the_pipelines_flat_batch_scores():
    result = {"scores": {"batch": {"batch_predictability": {"batch_accuracy": 0.5}}}}
    (rec,) = records_from_evaluation(result, model="random", checkpoint="none", dataset="d")
    assert rec.scores["batch_predictability"] == 0.5 and rec.task == "batch"


def test_the_committed_results_read_identically_and_migrate_unchanged(tmp_path):
    from cellbench.report.store import load_results

    files = sorted(LEADERBOARD.glob("*/*/*/*.json"))
    assert len(files) >= 60
    old = ResultsStore(LEADERBOARD)
    migrated = ResultsStore(tmp_path)
    for path in files:  # the earlier format: one self-contained JSON per task
        on_disk = json.loads(path.read_text())
        record = old.get(on_disk["model"], on_disk["checkpoint"], on_disk["dataset"], path.stem)
        assert record is not None and record.skipped is None
        assert {k: v for k, v in record.to_dict().items() if k in on_disk} == on_disk
        migrated.put(record)
    assert list(migrated.iter_results()) == list(old.iter_results())
    assert load_results(tmp_path) == load_results(LEADERBOARD)
