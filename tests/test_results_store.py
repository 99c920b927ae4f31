"""Results store: round trip, skip-what-is-done, path safety, two concurrent writer processes."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from cellbench.errors import InputError
from cellbench.results import ResultsStore, records_from_evaluation


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
    assert (
        got["scores"] == {"CORUM": 0.1}
        and got["provenance"] == "measured"
        and got["synthetic"] is True
    )
    assert {"config", "versions", "hashes", "timings", "created"} <= set(got)
    store.put(_record(task="compound_gene", value=0.2))
    store.put(_record(model="cwa-msn", value=0.3))
    assert len(list(store.iter_results())) == 3
    assert [r["model"] for r in store.iter_results(task="gene_gene")] == ["cwa-msn", "random"]


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
        store.put(_record(model="shared", value=worker * 1000 + i, payload="x" * 20000))
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
            assert len(rec["payload"]) == 20000
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    final = store.get("shared", "final", "synthetic-quick", "gene_gene")
    assert final["scores"]["CORUM"] in {1039, 2039}  # one writer's last record, whole
    records = list(store.iter_results())
    assert len(records) == 1 + 2 * 40
    for path in tmp_path.rglob("*"):
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
    assert (
        got["scores"]["CORUM"]["n_relationships"] == 4
        and got["config"]["null"] == "all"
        and got["synthetic"]
    )
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
    assert [r["model"] for r in store.iter_results(on_corrupt=seen.append)] == ["random"]
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
