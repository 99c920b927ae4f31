"""JUMP-style profiles (pycytominer / CPJUMP1 conventions): phenotypic activity and consistency
equal copairs called directly, RxRx3-core-layout inputs, the Python API, and every bad input
exiting 2 with an ``error:`` line and nothing written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from cellbench.cli import app

runner = CliRunner()
D = 24
NULL = 2000
ROOT = Path(__file__).resolve().parents[1]


def jump_profiles(seed: int = 0) -> pl.DataFrame:
    """CRISPR, ORF and compound plates in two sources: per type, four strongly separated
    perturbations (two per target) and four null ones, plus negcons; a strong poscon compound."""
    rng = np.random.default_rng(seed)
    rows, feats = [], []
    for ptype, ctrl_id in (
        ("CRISPR", "JCP2022_800001"),
        ("ORF", "JCP2022_900001"),
        ("COMPOUND", "JCP2022_033924"),
    ):
        perts = []  # (id, target, strong, pert_type)
        for k in range(4):
            perts.append((f"{ptype}_strong_{k}", f"{ptype}_T{k // 2}", True, "trt"))
        for k in range(4):
            perts.append((f"{ptype}_null_{k}", f"{ptype}_N{k // 2}", False, "trt"))
        if ptype == "COMPOUND":
            perts.append(("poscon_1", "POS", True, "poscon"))
        centres = {t: rng.normal(size=D) * 3.0 for t in {p[1] for p in perts}}
        for s, source in enumerate(("source_1", "source_2")):
            plate = f"{ptype}_P{s}"
            offset = rng.normal(size=D) * 0.3  # a mild plate effect
            i = 0
            for pid, tgt, strong, pert_type in perts:
                for _ in range(2):
                    centre = centres[tgt] + rng.normal(size=D) * 0.5 if strong else 0.0
                    feats.append(centre + offset + rng.normal(size=D))
                    rows.append(
                        (
                            source,
                            plate,
                            f"{chr(65 + i // 12)}{i % 12 + 1:02d}",
                            pid,
                            pert_type,
                            ptype,
                            tgt,
                        )
                    )
                    i += 1
            for _ in range(8):
                feats.append(offset + rng.normal(size=D))
                rows.append(
                    (
                        source,
                        plate,
                        f"{chr(65 + i // 12)}{i % 12 + 1:02d}",
                        ctrl_id,
                        "negcon",
                        ptype,
                        None,
                    )
                )
                i += 1
    meta = pl.DataFrame(
        rows,
        schema=[
            "Metadata_Source",
            "Metadata_Plate",
            "Metadata_Well",
            "Metadata_JCP2022",
            "Metadata_pert_type",
            "Metadata_perturbation_type",
            "Metadata_target",
        ],
        orient="row",
    )
    x = pl.DataFrame(np.asarray(feats), schema=[f"Cells_F{j}" for j in range(D)])
    return meta.hstack(x).sample(fraction=1.0, shuffle=True, seed=seed)


def invoke(*args):
    res = runner.invoke(app, ["evaluate", *map(str, args)])
    res.text = " ".join(res.output.split())
    return res


# --------------------------------------------------------------------------------------------
# copairs called directly, the reference the tasks must equal
# --------------------------------------------------------------------------------------------


def copairs_activity(x, pert, ctrl, seed=0):
    from copairs.map import average_precision, mean_average_precision

    meta = pd.DataFrame({"pert": pert, "ref": np.where(ctrl, np.arange(len(pert)), -1)})
    ap = average_precision(meta, x, ["pert", "ref"], [], [], ["pert", "ref"], progress_bar=False)
    return (
        mean_average_precision(
            ap[ap["ref"] == -1],
            ["pert", "ref"],
            null_size=NULL,
            threshold=0.05,
            seed=seed,
            progress_bar=False,
        )
        .sort_values("pert")
        .reset_index(drop=True)
    )


def copairs_consistency(x, target, seed=0):
    from copairs.map import average_precision, mean_average_precision

    meta = pd.DataFrame({"target": target})
    ap = average_precision(meta, x, ["target"], [], [], ["target"], progress_bar=False)
    return (
        mean_average_precision(
            ap, ["target"], null_size=NULL, threshold=0.05, seed=seed, progress_bar=False
        )
        .sort_values("target")
        .reset_index(drop=True)
    )


def reference(frame: pl.DataFrame):
    """Per type: copairs activity on the type's wells, then consistency on the median consensus
    profiles of its active perturbations whose target has two or more of them."""
    feats = [c for c in frame.columns if not c.startswith("Metadata_")]
    act, cons = {}, {}
    for ptype in ("COMPOUND", "CRISPR", "ORF"):
        sub = frame.filter(pl.col("Metadata_perturbation_type") == ptype)
        x = sub.select(feats).to_numpy()
        ctrl = (sub["Metadata_pert_type"] == "negcon").to_numpy()
        a = copairs_activity(x, sub["Metadata_JCP2022"].to_numpy(), ctrl)
        act[ptype] = a
        active = set(a.loc[a["below_corrected_p"], "pert"])
        trt = sub.filter(pl.col("Metadata_JCP2022").is_in(list(active)))
        consensus = trt.group_by("Metadata_JCP2022").agg(
            pl.col("Metadata_target").first(), *[pl.col(c).median() for c in feats]
        )
        counts = consensus["Metadata_target"].value_counts()
        keep = counts.filter(pl.col("count") >= 2)["Metadata_target"].to_list()
        consensus = consensus.filter(pl.col("Metadata_target").is_in(keep))
        cons[ptype] = copairs_consistency(
            consensus.select(feats).to_numpy(), consensus["Metadata_target"].to_numpy()
        )
    return act, cons


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jump")
    frame = jump_profiles()
    path = tmp / "profiles.parquet"
    frame.write_parquet(path)
    out = tmp / "out"
    res = invoke("--profiles", path, "--out", out, "--align", "none", "--null-size", NULL)
    assert res.exit_code == 0, res.output
    return frame, out, res


def test_profiles_activity_and_consistency_equal_copairs(scored):
    frame, out, res = scored
    assert "phenotypic activity" in res.text and "phenotypic consistency" in res.text
    act_ref, cons_ref = reference(frame)
    act = pl.read_csv(out / "activity.csv")
    cons = pl.read_csv(out / "consistency.csv")
    assert act.columns[:3] == ["perturbation_type", "perturbation", "concentration"]
    for ptype in ("COMPOUND", "CRISPR", "ORF"):
        got = act.filter(pl.col("perturbation_type") == ptype).sort("perturbation")
        ref = act_ref[ptype]
        assert got["perturbation"].to_list() == ref["pert"].tolist()
        for ours, theirs in (
            ("mean_average_precision", "mean_average_precision"),
            ("p_value", "p_value"),
            ("corrected_p_value", "corrected_p_value"),
        ):
            np.testing.assert_allclose(got[ours].to_numpy(), ref[theirs].to_numpy(), rtol=1e-12)
        assert got["retrieved"].to_list() == ref["below_corrected_p"].tolist()
        assert set(got.filter(pl.col("retrieved"))["perturbation"]) >= {
            f"{ptype}_strong_{k}" for k in range(4)
        }
        got_c = cons.filter(pl.col("perturbation_type") == ptype).sort("target")
        ref_c = cons_ref[ptype]
        assert got_c["target"].to_list() == ref_c["target"].tolist()
        np.testing.assert_allclose(
            got_c["mean_average_precision"].to_numpy(), ref_c["mean_average_precision"], rtol=1e-12
        )
        np.testing.assert_allclose(
            got_c["corrected_p_value"].to_numpy(), ref_c["corrected_p_value"], rtol=1e-12
        )
    assert set(act.filter(pl.col("perturbation_type") == "COMPOUND")["perturbation"]) >= {
        "poscon_1"
    }
    result = json.loads((out / "results.json").read_text())
    for task in ("activity", "consistency", "batch"):
        assert set(result["tasks"][task]) >= {"main_score", "evaluation_time"}
        assert result["tasks"][task]["evaluation_time"] >= 0
    assert result["tasks"]["activity"]["main_score"] == pytest.approx(act["retrieved"].mean())
    assert result["config"]["columns"]["perturbation"] == "Metadata_JCP2022"
    assert result["config"]["columns"]["batch"] == "Metadata_Source"
    assert result["config"]["columns"]["target"] == "Metadata_target"
    assert len(result["hashes"]["profiles"]) == 64 and "copairs" in result["versions"]
    assert sorted(result["files"]) == [
        "activity.csv",
        "batch.csv",
        "consistency.csv",
        "results.json",
    ]
    batch = pl.read_csv(out / "batch.csv")
    assert batch.schema["value"] == pl.Float64 and batch.height > 0


def test_csv_profiles_and_two_file_form_give_the_same_activity(tmp_path, scored):
    frame, out, _ = scored
    csv = tmp_path / "profiles.csv"
    frame.write_csv(csv)
    res = invoke(
        "--profiles",
        csv,
        "--out",
        tmp_path / "a",
        "--align",
        "none",
        "--null-size",
        NULL,
        "--tasks",
        "activity",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    expected = pl.read_csv(out / "activity.csv")
    assert pl.read_csv(tmp_path / "a" / "activity.csv").equals(expected)
    # the two-file form: embeddings parquet (well_id + feature_*) + Metadata_* metadata as parquet
    ids = frame.select(
        pl.concat_str(["Metadata_Source", "Metadata_Plate", "Metadata_Well"], separator="_")
    ).to_series()
    feats = [c for c in frame.columns if not c.startswith("Metadata_")]
    emb = pl.DataFrame({"well_id": ids}).hstack(
        frame.select(feats).rename({c: f"feature_{i}" for i, c in enumerate(feats)})
    )
    emb.write_parquet(tmp_path / "emb.parquet")
    frame.select([c for c in frame.columns if c.startswith("Metadata_")]).write_parquet(
        tmp_path / "meta.parquet"
    )
    res = invoke(
        "--embeddings",
        tmp_path / "emb.parquet",
        "--metadata",
        tmp_path / "meta.parquet",
        "--out",
        tmp_path / "b",
        "--align",
        "none",
        "--null-size",
        NULL,
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    assert pl.read_csv(tmp_path / "b" / "activity.csv").equals(expected)
    assert (tmp_path / "b" / "consistency.csv").exists()


def test_activity_engine_fast_and_copairs_give_the_same_results(tmp_path, scored):
    """--activity-engine copairs (copairs itself) scores what the default fast engine scored,
    and each records its engine in the configuration; so does the Python API."""
    import cellbench

    frame, out, _ = scored
    res = invoke(
        "--profiles",
        out.parent / "profiles.parquet",
        "--out",
        tmp_path / "c",
        "--align",
        "none",
        "--null-size",
        NULL,
        "--activity-engine",
        "copairs",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    for name in ("activity.csv", "consistency.csv"):
        fast, ref = pl.read_csv(out / name), pl.read_csv(tmp_path / "c" / name)
        assert fast.height and fast.drop("mean_average_precision").equals(
            ref.drop("mean_average_precision")
        ), name
        # mAP: equal up to the order of a float64 sum (docs in cellbench.metrics.map_exact)
        np.testing.assert_allclose(
            fast["mean_average_precision"].to_numpy(),
            ref["mean_average_precision"].to_numpy(),
            rtol=1e-12,
        )
    configs = [
        json.loads((d / "results.json").read_text())["config"] for d in (out, tmp_path / "c")
    ]
    assert [c["activity_engine"] for c in configs] == ["fast", "copairs"]
    api = cellbench.evaluate(
        frame, tasks=["activity"], align="none", null_size=NULL, activity_engine="copairs"
    )
    assert api.config["activity_engine"] == "copairs"
    assert api.tables["activity"]["p_value"].equals(pl.read_csv(out / "activity.csv")["p_value"])


def test_bad_activity_engine_exits_2_naming_the_engines(tmp_path):
    import cellbench
    from cellbench.errors import InputError

    path = tmp_path / "p.parquet"
    jump_profiles(3).write_parquet(path)
    res = invoke("--profiles", path, "--out", tmp_path / "o", "--activity-engine", "slow")
    assert res.exit_code == 2, res.output
    assert "error:" in res.text and "Traceback" not in res.output
    assert "'slow'" in res.text and "fast, copairs" in res.text and "--activity-engine" in res.text
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="fast, copairs"):
        cellbench.evaluate(path, activity_engine="slow", out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_overrides_and_skip_without_target(tmp_path):
    frame = (
        jump_profiles(1)
        .rename(
            {
                "Metadata_JCP2022": "Metadata_pert_iname",
                "Metadata_Plate": "Metadata_plate_map",
                "Metadata_pert_type": "Metadata_control_type",
            }
        )
        .drop("Metadata_target")
    )
    frame = frame.with_columns(pl.col("Metadata_control_type").replace({"negcon": "DMSO"}))
    path = tmp_path / "p.parquet"
    frame.write_parquet(path)
    res = invoke(
        "--profiles",
        path,
        "--out",
        tmp_path / "o",
        "--perturbation",
        "Metadata_pert_iname",
        "--plate",
        "Metadata_plate_map",
        "--control",
        "Metadata_control_type=DMSO",
        "--batch",
        "Metadata_Source",
        "--null-size",
        500,
        "--align",
        "centerscale",
    )
    assert res.exit_code == 0, res.output
    assert "skipped consistency" in res.text and "--target" in res.text
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["config"]["columns"]["control"] == "Metadata_control_type=DMSO"
    assert not (tmp_path / "o" / "consistency.csv").exists()
    # one type for the whole table, and no batch column: plates become the batches (noted)
    res = invoke(
        "--profiles",
        path,
        "--out",
        tmp_path / "o2",
        "--perturbation",
        "Metadata_pert_iname",
        "--plate",
        "Metadata_plate_map",
        "--control",
        "Metadata_control_type=DMSO",
        "--perturbation-type",
        "COMPOUND",
        "--null-size",
        500,
        "--tasks",
        "activity",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    act = pl.read_csv(tmp_path / "o2" / "activity.csv")
    assert set(act["perturbation_type"]) == {"COMPOUND"}


def _bad(frame: pl.DataFrame, case: str) -> pl.DataFrame:
    if case == "no controls":
        return frame.with_columns(pl.lit("trt").alias("Metadata_pert_type"))
    if case == "no plate":
        return frame.drop("Metadata_Plate")
    if case == "non-numeric feature":
        return frame.with_columns(pl.lit("x").alias("Cells_Note"))
    if case == "duplicate well":
        return frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 1)
            .then(pl.lit(frame["Metadata_Well"][0]))
            .otherwise(pl.col("Metadata_Well"))
            .alias("Metadata_Well"),
            pl.when(pl.int_range(pl.len()) == 1)
            .then(pl.lit(frame["Metadata_Plate"][0]))
            .otherwise(pl.col("Metadata_Plate"))
            .alias("Metadata_Plate"),
            pl.when(pl.int_range(pl.len()) == 1)
            .then(pl.lit(frame["Metadata_Source"][0]))
            .otherwise(pl.col("Metadata_Source"))
            .alias("Metadata_Source"),
        )
    if case == "nan":
        return frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(None)
            .otherwise(pl.col("Cells_F5"))
            .alias("Cells_F5")
        )
    if case == "bad type":
        return frame.with_columns(pl.lit("siRNA").alias("Metadata_perturbation_type"))
    if case == "no perturbation":
        return frame.drop("Metadata_JCP2022")
    raise AssertionError(case)


BAD = {  # case -> what the message must name (column, flag)
    "no controls": ("Metadata_pert_type", "--control"),
    "no plate": ("Metadata_Plate", "--plate"),
    "non-numeric feature": ("Cells_Note", "Metadata_"),
    "duplicate well": ("Metadata_Well", "--well"),
    "nan": ("Cells_F5", "feature_select"),
    "bad type": ("Metadata_perturbation_type", "--perturbation-type"),
    "no perturbation": ("Metadata_JCP2022", "--perturbation"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bad_profiles_exit_2_and_write_nothing(tmp_path, case, fmt):
    frame = _bad(jump_profiles(2), case)
    path = tmp_path / f"p.{fmt}"
    frame.write_parquet(path) if fmt == "parquet" else frame.write_csv(path)
    out = tmp_path / "out"
    res = invoke("--profiles", path, "--out", out)
    assert res.exit_code == 2, res.output
    assert "error:" in res.text and "Fix" in res.text and "Traceback" not in res.output
    for needle in BAD[case]:
        assert needle in res.text, (needle, res.text)
    assert not out.exists() or not any(out.iterdir())


def test_bad_flags(tmp_path):
    path = tmp_path / "p.parquet"
    jump_profiles(3).write_parquet(path)
    cases = [
        (["--perturbation", "Metadata_nope"], "Metadata_nope"),
        (["--control", "Metadata_pert_type"], "COL=VALUE"),
        (["--tasks", "activity,nope"], "--tasks"),
        (["--target", "Metadata_JCP2022"], "--target"),
    ]
    for extra, needle in cases:
        res = invoke("--profiles", path, "--out", tmp_path / "o", *extra)
        assert res.exit_code == 2 and "error:" in res.text and needle in res.text, res.output
    res = invoke("--profiles", path, "--embeddings", path, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "--profiles" in res.text
    res = invoke("--out", tmp_path / "o")
    assert res.exit_code == 2 and "--profiles" in res.text
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------
# RxRx3-core layout: a gene's wells (all guides) against EMPTY_control
# --------------------------------------------------------------------------------------------


def rxrx3_release(seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, feats = [], []
    genes = [f"GENE{k}" for k in range(8)]
    centres = {g: rng.normal(size=D) * (3.0 if k < 4 else 0.0) for k, g in enumerate(genes)}
    for e in range(1, 3):
        exp, i = f"gene-{e:03d}", 0
        for g in genes:
            for guide in range(2):
                address = f"{chr(65 + i // 24)}{i % 24 + 1:02d}"
                rows.append(
                    (
                        f"{exp}_1_{address}",
                        exp,
                        "1",
                        address,
                        g,
                        f"{g}_guide_{guide}",
                        "",
                        "",
                        "CRISPR",
                        "HUVEC",
                    )
                )
                feats.append(centres[g] + rng.normal(size=D))
                i += 1
        for _ in range(10):
            address = f"{chr(65 + i // 24)}{i % 24 + 1:02d}"
            rows.append(
                (
                    f"{exp}_1_{address}",
                    exp,
                    "1",
                    address,
                    "EMPTY_control",
                    "EMPTY_control",
                    "",
                    "",
                    "CRISPR",
                    "HUVEC",
                )
            )
            feats.append(rng.normal(size=D))
            i += 1
    from cellbench.schema import RXRX3_METADATA_COLUMNS

    return pl.DataFrame(rows, schema=list(RXRX3_METADATA_COLUMNS), orient="row"), np.asarray(feats)


def test_activity_on_rxrx3_layout_pools_guides_against_empty_control(tmp_path):
    from cellbench.evaluate import evaluate_arrays
    from cellbench.maps.labels import wells_from_rxrx3

    md, x = rxrx3_release()
    out = evaluate_arrays(
        md["well_id"].to_list(),
        x,
        md,
        tasks=("activity", "consistency"),
        align="none",
        null_size=NULL,
    )
    assert "no target annotation" in out["skipped"]["consistency"]
    assert out["tasks"]["activity"]["main_score"] == out["scores"]["activity"]["fraction_retrieved"]
    wells = wells_from_rxrx3(md)
    ref = copairs_activity(x, wells["perturbation"].to_numpy(), wells["is_control"].to_numpy())
    assert ref["pert"].tolist() == [f"GENE{k}" for k in range(8)]
    np.testing.assert_allclose(
        out["scores"]["activity"]["mean_map"], ref["mean_average_precision"].mean()
    )
    assert out["scores"]["activity"]["n_retrieved"] == int(ref["below_corrected_p"].sum()) >= 4
    # pandas inputs are accepted (no raw AttributeError), with the same numbers
    out_pd = evaluate_arrays(
        md["well_id"].to_pandas(),
        pd.DataFrame(x),
        md.to_pandas(),
        tasks=("activity",),
        align="none",
        null_size=NULL,
    )
    assert out_pd["scores"] == {"activity": out["scores"]["activity"]}


# --------------------------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = next(b for b in blocks if "cellbench.evaluate(" in b)
    assert len(code.strip().splitlines()) <= 6
    return code


def test_readme_example_runs(tmp_path, monkeypatch):
    jump_profiles(4).write_parquet(tmp_path / "profiles.parquet")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    res = namespace["res"]
    assert res.main_scores()["activity"] == res.scores["activity"]["fraction_retrieved"]
    data = json.loads(res.to_json())
    assert set(data["tasks"]) >= {"activity", "consistency"} and "copairs" in data["versions"]


def test_api_accepts_frames_paths_and_writes(tmp_path):
    import dataclasses

    import cellbench

    frame = jump_profiles(5)
    a = cellbench.evaluate(frame, tasks=["activity"], align="none", null_size=NULL)
    b = cellbench.evaluate(frame.to_pandas(), tasks=["activity"], align="none", null_size=NULL)
    assert a.tables["activity"].equals(b.tables["activity"])
    assert isinstance(a.tables["activity"], pl.DataFrame) and dataclasses.is_dataclass(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.scores = {}
    frame.write_parquet(tmp_path / "p.parquet")
    c = cellbench.evaluate(
        tmp_path / "p.parquet", tasks=["activity"], align="none", null_size=NULL, out=tmp_path / "o"
    )
    assert c.tables["activity"].equals(a.tables["activity"])
    written = pl.read_csv(tmp_path / "o" / "activity.csv", schema=a.tables["activity"].schema)
    assert written.equals(a.tables["activity"])
    assert c.config["align"] == "none" and c.versions["copairs"]
    md, x = rxrx3_release()
    emb = pl.DataFrame({"well_id": md["well_id"]}).hstack(
        pl.DataFrame(x, schema=[f"feature_{i}" for i in range(D)])
    )
    r = cellbench.evaluate(emb, md, tasks=["activity"], null_size=NULL)
    assert r.scores["activity"]["n_perturbations"] == 8
    from cellbench.errors import InputError

    with pytest.raises(InputError, match="--plate"):
        cellbench.evaluate(frame.drop("Metadata_Plate"))


@pytest.mark.parametrize("order", ["call-then-import", "import-then-call", "from-import"])
def test_cellbench_evaluate_is_callable_in_any_import_order(tmp_path, order):
    jump_profiles(6).write_parquet(tmp_path / "p.parquet")
    call = f"r = cellbench.evaluate({str(tmp_path / 'p.parquet')!r}, tasks=['activity'], null_size=200); assert r.scores"
    lines = {
        "call-then-import": [
            "import cellbench",
            "import sys",
            "assert 'polars' not in sys.modules",
            call,
            "import cellbench.evaluate",
            "from cellbench.evaluate import evaluate_arrays",
            call,
            "import cellbench.evaluate as ev; assert ev.evaluate_arrays is evaluate_arrays",
        ],
        "import-then-call": [
            "import cellbench.evaluate as ev",
            "from cellbench.evaluate import evaluate_arrays",
            "import cellbench",
            call,
            "assert cellbench.evaluate is ev",
            call,
        ],
        "from-import": [
            "from cellbench import evaluate",
            "import cellbench",
            call.replace("cellbench.evaluate(", "evaluate("),
            "import cellbench.evaluate",
            call,
        ],
    }[order]
    proc = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
            "CELLBENCH_HOME": str(tmp_path / "home"),
        },
    )
    assert proc.returncode == 0, proc.stderr
