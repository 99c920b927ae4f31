"""Loaders read the real file layouts (fixtures written here) and the synthetic screen alike."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cellbench.data import load_dataset
from cellbench.data.bray import BrayDataset
from cellbench.data.channels import canonical_name, channel_plan, map_channels
from cellbench.data.folder import FolderDataset
from cellbench.data.images import encode_png
from cellbench.data.rxrx3 import RxRx3Dataset, load_rxrx3
from cellbench.data.synthetic import generate_screen
from cellbench.errors import CellbenchError, InputError, NotFoundError
from cellbench.schema import RXRX3_METADATA_COLUMNS, WELL_COLUMNS


def _jp2(img):
    """Lossless JPEG 2000 bytes, as the real release stores each image."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG2000", irreversible=False)
    return buf.getvalue()


def _rxrx3_fixture(root, rng, corrupt_key=None, drop_key=None, encode=encode_png):
    """A hand-made RxRx3-core release in miniature: 3 wells, 1 site, 6 channels, 2 shards."""
    meta = pl.DataFrame(
        {
            "well_id": ["gene-001_1_AA02", "gene-001_1_AB05", "compound-002_3_B07"],
            "experiment_name": ["gene-001", "gene-001", "compound-002"],
            "plate": [1, 1, 3],
            "address": ["AA02", "AB05", "B07"],
            "gene": ["RPLP2", "EMPTY_control", None],
            "treatment": ["RPLP2_guide_4", "EMPTY_control", "Imatinib"],
            "SMILES": [None, None, "CC1=C"],
            "concentration": [None, None, 2.5],
            "perturbation_type": ["CRISPR", "CRISPR", "COMPOUND"],
            "cell_type": ["HUVEC"] * 3,
        },
        schema_overrides={"gene": pl.Utf8, "SMILES": pl.Utf8, "concentration": pl.Float64},
    )
    root.mkdir(parents=True, exist_ok=True)
    meta.write_csv(root / "metadata_rxrx3_core.csv")
    truth = rng.integers(0, 256, (3, 6, 16, 16), dtype=np.uint8)
    rows = []
    for w, (exp, plate, addr) in enumerate(
        zip(meta["experiment_name"], meta["plate"], meta["address"], strict=True)
    ):
        for c in range(6):
            key = f"{exp}/Plate{plate}/{addr}_s1_{c + 1}"
            if key == drop_key:
                continue
            data = b"not an image" if key == corrupt_key else encode(truth[w, c])
            rows.append((key, data))
    order = rng.permutation(len(rows))
    (root / "data").mkdir(exist_ok=True)
    for k, part in enumerate(np.array_split(order, 2)):
        keys = [rows[i][0] for i in part]
        blobs = [rows[i][1] for i in part]
        jp2 = pa.StructArray.from_arrays(
            [pa.array(blobs, pa.binary()), pa.array([None] * len(blobs), pa.string())],
            names=["bytes", "path"],
        )
        pq.write_table(
            pa.table({"__key__": keys, "jp2": jp2}),
            root / "data" / f"train-{k:05d}-of-00002.parquet",
            row_group_size=4,
        )  # several row groups: exercise partial reads
    return truth


def test_rxrx3_loader_reads_a_hand_made_release(tmp_path):
    truth = _rxrx3_fixture(tmp_path / "rx", np.random.default_rng(0))
    ds = RxRx3Dataset(tmp_path / "rx")
    assert ds.channels == ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")
    assert ds.wells["well_id"].to_list() == [
        "gene-001_1_AA02",
        "gene-001_1_AB05",
        "compound-002_3_B07",
    ]
    assert set(WELL_COLUMNS) <= set(ds.wells.columns)
    assert ds.wells["perturbation"].to_list() == ["RPLP2", "EMPTY_control", "Imatinib"]
    assert ds.wells["is_control"].to_list() == [False, True, False]
    site_truth = truth[ds.sites["well_index"].to_numpy()]  # sites follow the shards' storage order
    np.testing.assert_array_equal(ds.read_sites([2, 0]), site_truth[[2, 0]])
    np.testing.assert_array_equal(ds.load_all(), site_truth)
    assert list(tmp_path.joinpath("rx").glob(".images-*.npy"))  # cached beside the data
    np.testing.assert_array_equal(RxRx3Dataset(tmp_path / "rx").load_all(), site_truth)


def test_rxrx3_loader_decodes_jpeg2000_like_the_release(tmp_path):
    from PIL import features

    if not features.check("jpg_2000"):
        pytest.skip("this Pillow has no OpenJPEG to write the JPEG 2000 fixture")
    truth = _rxrx3_fixture(tmp_path / "j", np.random.default_rng(3), encode=_jp2)
    ds = RxRx3Dataset(tmp_path / "j")
    np.testing.assert_array_equal(
        ds.load_all(cache=False), truth[ds.sites["well_index"].to_numpy()]
    )


def test_jpeg2000_without_a_decoder_says_how_to_install_one(monkeypatch):
    import builtins

    from PIL import Image

    from cellbench.data.images import decode

    real_import = builtins.__import__

    def no_codecs(name, *args, **kwargs):
        if name in ("imagecodecs", "glymur"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    def no_openjpeg(*args, **kwargs):
        raise OSError("decoder jpeg2k not available")

    monkeypatch.setattr(builtins, "__import__", no_codecs)
    monkeypatch.setattr(Image, "open", no_openjpeg)
    with pytest.raises(CellbenchError, match="pip install imagecodecs"):
        decode(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 20, "shard.parquet row 3")


def test_rxrx3_corrupt_image_and_missing_channel(tmp_path):
    _rxrx3_fixture(
        tmp_path / "c", np.random.default_rng(1), corrupt_key="gene-001/Plate1/AB05_s1_3"
    )
    ds = RxRx3Dataset(tmp_path / "c")
    with pytest.raises(
        InputError, match=r"train-0000\d-of-00002\.parquet row \d+ \(gene-001_1_AB05_s1\)"
    ):
        ds.read_sites([ds.sites["site_id"].to_list().index("gene-001_1_AB05_s1")])
    _rxrx3_fixture(tmp_path / "m", np.random.default_rng(1), drop_key="gene-001/Plate1/AA02_s1_5")
    with pytest.raises(InputError, match="no image for channel Mito"):
        RxRx3Dataset(tmp_path / "m")


def test_rxrx3_truncated_shard_names_the_file(tmp_path):
    _rxrx3_fixture(tmp_path / "t", np.random.default_rng(2))
    shard = tmp_path / "t" / "data" / "train-00001-of-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(InputError, match="train-00001-of-00002.parquet"):
        RxRx3Dataset(tmp_path / "t")


def test_rxrx3_offline_message(tmp_path, monkeypatch):
    """Offline mode is huggingface_hub's own setting (read once at its import), and the command
    to run is `hf download` (huggingface_hub >= 1.0 has no `huggingface-cli`)."""
    import huggingface_hub.constants as hc

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    with pytest.raises(NotFoundError, match="hf download recursionpharma/rxrx3-core") as info:
        load_rxrx3(tmp_path / "absent")
    assert "huggingface-cli" not in str(info.value)


def test_synthetic_screen_goes_through_the_same_loader(tmp_path):
    root = generate_screen("synthetic-rxrx3-core", "tiny", 0, tmp_path / "syn")
    ds = load_dataset("synthetic-rxrx3-core", data_dir=root)
    assert isinstance(ds, RxRx3Dataset)
    meta = pl.read_csv(root / "metadata_rxrx3_core.csv", infer_schema_length=None)
    assert tuple(meta.columns) == RXRX3_METADATA_COLUMNS
    assert ds.wells.height == meta.height == ds.sites.height
    imgs = ds.read_sites([0, 1, 2])
    assert imgs.dtype == np.uint8 and imgs.shape == (3, 6, 32, 32)
    assert ds.ground_truth["well_id"].to_list() == ds.wells["well_id"].to_list()
    np.testing.assert_array_equal(ds.load_all()[[0, 1, 2]], imgs)


def _bray_fixture(root, rng, files=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    keys = ["24277-A01-1", "24277-A01-2", "24277-B03-1"]
    samples = rng.integers(0, 256, (3, 12, 12, 5), dtype=np.uint8)
    for k, s in zip(keys, samples, strict=True):
        np.savez(
            root / "images" / f"{k}.npz", sample=s
        )  # CLOOME: H x W x 5 (Mito, ER, RNA, AGP, DNA)
    pl.DataFrame(
        {
            "SAMPLE_KEY": keys,
            "plate": [24277] * 3,
            "well": ["A01", "A01", "B03"],
            "site": [1, 2, 1],
            "compound": ["BRD-1", "BRD-1", "DMSO"],
            "concentration": [5.0, 5.0, 0.0],
            "file": files or [f"images/{k}.npz" for k in keys],
        }
    ).write_csv(root / "metadata_bray.csv")
    return samples


def test_bray_loader_reads_cloome_npz_by_channel_name(tmp_path):
    samples = _bray_fixture(tmp_path / "b", np.random.default_rng(0))
    ds = BrayDataset(tmp_path / "b")
    assert ds.channels == ("DNA", "ER", "RNA", "AGP", "Mito")
    got = ds.read_sites([0, 2])
    np.testing.assert_array_equal(got[:, 0], samples[[0, 2], :, :, 4])  # DNA is last in the npz
    np.testing.assert_array_equal(got[:, 4], samples[[0, 2], :, :, 0])  # Mito is first
    assert ds.wells["is_control"].to_list() == [False, True]
    assert ds.sites["well_index"].to_list() == [0, 0, 1]


def test_bray_index_with_only_sample_keys_and_inchikeys(tmp_path):
    root = tmp_path / "c"
    samples = _bray_fixture(root, np.random.default_rng(5))
    pl.DataFrame(
        {
            "SAMPLE_KEY": ["24277-A01-1", "24277-A01-2", "24277-B03-1"],
            "INCHIKEY": ["AAAA-BBBB", "AAAA-BBBB", "CCCC-DDDD"],
        }
    ).write_csv(root / "index.csv")
    ds = BrayDataset(root, metadata=str(root / "index.csv"))
    assert ds.wells["perturbation"].to_list() == ["AAAA-BBBB", "CCCC-DDDD"]
    assert ds.sites["site"].to_list() == [1, 2, 1]
    np.testing.assert_array_equal(ds.read_sites([1])[0, 3], samples[1, :, :, 3])  # AGP


def test_bray_synthetic_and_corrupt_npz(tmp_path):
    root = generate_screen("synthetic-bray", "tiny", 0, tmp_path / "sb")
    ds = load_dataset("synthetic-bray", data_dir=root)
    assert isinstance(ds, BrayDataset) and ds.read_sites([0]).shape == (1, 5, 32, 32)
    _bray_fixture(tmp_path / "x", np.random.default_rng(1))
    (tmp_path / "x" / "images" / "24277-B03-1.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="24277-B03-1.npz"):
        BrayDataset(tmp_path / "x").read_sites([2])


@pytest.mark.parametrize("bad", ["../outside.npz", "/etc/passwd", "images/../../x.npz"])
def test_paths_cannot_escape_the_data_root(tmp_path, bad):
    _bray_fixture(
        tmp_path / "e",
        np.random.default_rng(0),
        files=["images/24277-A01-1.npz", bad, "images/24277-B03-1.npz"],
    )
    with pytest.raises(InputError, match="outside the data root"):
        BrayDataset(tmp_path / "e")


def test_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 2, 8, 8), dtype=np.uint8)
    rows = []
    for s in range(2):
        for c, ch in enumerate(("Hoechst", "Mito")):
            (tmp_path / f"s{s}_{ch}.png").write_bytes(encode_png(imgs[s, c]))
        rows.append(
            {
                "well_id": f"P1_A0{s + 1}",
                "batch": "b1",
                "plate": "P1",
                "well": f"A0{s + 1}",
                "perturbation": "x",
                "perturbation_type": "COMPOUND",
                "concentration": 1.0,
                "is_control": False,
                "site": 1,
                "file_Hoechst": f"s{s}_Hoechst.png",
                "file_Mito": f"s{s}_Mito.png",
            }
        )
    pl.DataFrame(rows).write_csv(tmp_path / "wells.csv")
    ds = FolderDataset(tmp_path)
    np.testing.assert_array_equal(ds.read_sites([1, 0]), imgs[[1, 0]])
    assert channel_plan(ds.channels, ["Mito", "DNA"]) == [(1,), (0,)]


def test_channel_mapping_by_name():
    rx = ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")
    bray = ("DNA", "ER", "RNA", "AGP", "Mito")
    x = np.arange(2 * 6 * 2 * 2, dtype=np.uint8).reshape(2, 6, 2, 2)
    out = map_channels(x, rx, bray)
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    np.testing.assert_array_equal(out[:, 2], x[:, 3])
    expect = np.rint((x[:, 2].astype(float) + x[:, 5]) / 2).astype(np.uint8)
    np.testing.assert_array_equal(out[:, 3], expect)  # AGP := mean(Actin, Golgi)
    assert channel_plan(bray, rx)[2] == (3,) and channel_plan(bray, rx)[5] == (3,)
    assert channel_plan(rx, ["AGP"], derived={"AGP": ["Actin"]}) == [(2,)]  # configurable
    with pytest.raises(CellbenchError, match="'Brightfield' is needed"):
        channel_plan(rx, ["DNA", "Brightfield"])
    with pytest.raises(CellbenchError, match="AGP"):
        channel_plan(rx, ["AGP"], derived={})
    assert canonical_name("hoechst") == "DNA" and canonical_name("WGA") == "Golgi"
