"""Compact corpus records: exact round trips, bonds stored once, and format-1 corpora still read."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from molchannel.chem.featurizers import get_featurizer
from molchannel.pretrain.corpus import CorpusConfig, PretrainCorpus, prepare_corpus
from molchannel.pretrain.records import RecordCodec, RecordStore, write_records

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zinc_sample.smi"


def _anchor(smiles: str, featurizer: str = "basic") -> Data:
    data = get_featurizer(featurizer)(smiles)
    n = data.num_nodes
    data.context_label = torch.arange(n) % 7 + 300  # needs int16: narrowing must not clip it
    data.scaffold_mask = (torch.arange(n) % 2).to(torch.uint8)
    data.fp = torch.randint(0, 255, (1, 64), dtype=torch.uint8)
    data.motif = torch.rand(1, 86).to(torch.float16)
    data.n_real = torch.tensor([3])
    return data


def _assert_same(a: Data, b: Data) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():  # noqa: SIM118 - iterating a PyG Data yields (key, value) pairs
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("featurizer", ["basic", "rich"])
def test_records_round_trip_exactly(featurizer: str) -> None:
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O", "[Na+].[Cl-]", "C"]
    anchors = [_anchor(s, featurizer) for s in smiles]
    positives = [[get_featurizer(featurizer)(t) for t in ("CCO", s, "c1ccccc1")] for s in smiles]
    codec = RecordCodec.fit(anchors, positives)
    assert {f.name: f.stored for f in codec.anchor_fields}["context_label"] == "int16"
    codec = RecordCodec.from_dict(json.loads(json.dumps(codec.to_dict())), codec.zdict)  # as a shard reads it
    for anchor, pos in zip(anchors, positives, strict=True):
        record = codec.open(codec.encode(anchor, pos))
        _assert_same(anchor, record.anchor())
        assert len(record) == 3
        for j in (2, 0, 1):  # any positive alone, in any order
            _assert_same(pos[j], record[j])


def test_descriptors_are_stored_as_8_bit_codes_counts_exactly() -> None:
    rng = np.random.default_rng(0)
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O", "c1ccccc1O", "CCN"] * 10
    anchors = [_anchor(s) for s in smiles]
    scale = np.array([1.0, 100.0, 1e-3, 0.0] * 29 + [5.0, 5.0])  # 118 columns of very different spread
    for a in anchors:
        a.descriptors = torch.from_numpy(rng.normal(3.0, 1.0, 118) * scale).to(torch.float16)[None]
        a.descriptors[0, 3] = float(rng.integers(0, 6))  # a count column
    anchors[0].descriptors[0, 5] = float("nan")
    anchors[1].descriptors[0, 1] = float("inf")
    positives = [[a] for a in anchors]
    exact = RecordCodec.fit(anchors, positives, quantize=False)
    coded = RecordCodec.fit(anchors, positives)
    coded = RecordCodec.from_dict(json.loads(json.dumps(coded.to_dict())), coded.zdict)  # as a shard reads it
    layout = {f.name: f for f in coded.anchor_fields}["descriptors"]
    assert layout.stored == "uint8" and layout.original == "float16"
    stacked = np.concatenate([a.descriptors.double().numpy() for a in anchors])
    std = np.nanstd(np.where(np.isfinite(stacked), stacked, np.nan), axis=0)
    for a, p in zip(anchors, positives, strict=True):
        same = exact.open(exact.encode(a, p)).anchor()  # float16 kept bit for bit (NaN included)
        torch.testing.assert_close(same.descriptors, a.descriptors, rtol=0, atol=0, equal_nan=True)
        back = coded.open(coded.encode(a, p)).anchor()
        assert back.descriptors.dtype == torch.float16
        x, y = a.descriptors.double().numpy()[0], back.descriptors.double().numpy()[0]
        assert np.array_equal(np.isnan(x), np.isnan(y))
        assert x[3] == y[3]
        low, step = np.asarray(layout.low), np.asarray(layout.step)
        inside = np.isfinite(x) & (x >= low) & (x <= low + 254 * step)
        # off by half a level at most, plus float16's rounding of the decoded value ...
        assert np.all(np.abs(x - y)[inside] <= (0.5 * step + 1e-3 * np.abs(x) + 1e-7)[inside])
        # ... and clipped to the range of the codes outside it (as the normaliser clips at 5 std)
        outside = np.isfinite(x) & ~inside
        assert np.allclose(y[outside], np.clip(x, low, low + 254 * step)[outside], rtol=1e-3, atol=1e-6)
        for k in a.keys():  # noqa: SIM118 - everything but the descriptors is exact
            if k != "descriptors":
                assert torch.equal(a[k], back[k]), k
    # counts are exact; other columns: 254 levels over at most +-8 std, half a level <= 0.03 std
    step = np.asarray(layout.step)
    assert step[3] == 1.0
    varied = std > 0
    varied[3] = False
    assert np.all(0.5 * step[varied] <= 8 / 254 * std[varied] + 1e-12)
    # +inf is clipped to the top code
    top = coded.open(coded.encode(anchors[1], positives[1])).anchor().descriptors[0, 1].item()
    assert top == pytest.approx(layout.low[1] + 254 * layout.step[1], rel=1e-3)
    assert len(coded.encode(anchors[2], positives[2])) < len(exact.encode(anchors[2], positives[2]))


def _header(codec: RecordCodec, anchor: Data, positives: list[Data]) -> list[int]:
    """(positives, then atoms, stored bonds, directed flag of each graph) of an encoded record."""
    decompressor = zlib.decompressobj(zdict=codec.zdict)
    raw = decompressor.decompress(codec.encode(anchor, positives))
    return np.frombuffer(raw, np.uint16, 1 + 3 * (len(positives) + 1)).tolist()


def test_bonds_are_stored_once_and_asymmetric_graphs_kept_whole() -> None:
    anchor = _anchor("CCOC(=O)c1ccccc1")
    codec = RecordCodec.fit([anchor], [[anchor]])
    n_atoms, n_edges = anchor.num_nodes, anchor.edge_index.shape[1]
    assert _header(codec, anchor, [anchor]) == [1, n_atoms, n_edges // 2, 0, n_atoms, n_edges // 2, 0]
    # the two directions of a bond with different features cannot be halved: stored whole
    odd = anchor.clone()
    odd.edge_attr = odd.edge_attr.clone()
    odd.edge_attr[0, 1] = 2
    assert _header(codec, odd, [odd])[1:4] == [n_atoms, n_edges, 1]
    record = codec.open(codec.encode(odd, [odd]))
    _assert_same(odd, record.anchor())
    _assert_same(Data(x=odd.x, edge_index=odd.edge_index, edge_attr=odd.edge_attr), record[0])


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_record_store_is_memory_mapped_and_checks_its_size(tmp_path: Path, compression: str) -> None:
    anchors = [_anchor(s) for s in ("CCO", "c1ccccc1O")]
    positives = [[a] for a in anchors]
    codec = RecordCodec.fit(anchors, positives)
    raws = [codec.raw(a, p) for a, p in zip(anchors, positives, strict=True)]
    data, meta = tmp_path / "s.records.safetensors", tmp_path / "s.records.json"
    write_records(data, meta, codec, raws, [5, 9], {"shard": 0}, compression=compression)
    store = RecordStore(data, meta)
    assert store.compression["codec"] == compression
    assert len(store) == 2 and store.row_index.tolist() == [5, 9]
    _assert_same(anchors[1], store.open(1).anchor())
    assert store.anchor_field("motif", 5).shape == (2, 86)
    with pytest.raises(IndexError):
        store.raw(2)
    data.write_bytes(data.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        RecordStore(data, meta)


def test_blocks_read_the_same_records_in_any_order_and_pickle(tmp_path: Path) -> None:
    """Format 3: 70 records in blocks of 32 (the last one short); a read in any order, across block
    boundaries, gives each record's exact bytes, and a store that has read pickles (DataLoader workers)."""
    import pickle

    from molchannel.pretrain import records

    smiles = [s for s in SAMPLE.read_text().split()[:70]]
    anchors = [_anchor(s) for s in smiles]
    positives = [[get_featurizer("basic")(s)] for s in reversed(smiles)]
    codec = RecordCodec.fit(anchors, positives)
    raws = [codec.raw(a, p) for a, p in zip(anchors, positives, strict=True)]
    data, meta = tmp_path / "s.records.safetensors", tmp_path / "s.records.json"
    write_records(data, meta, codec, raws, list(range(70)), {"shard": 0})
    store = RecordStore(data, meta)
    assert store.compression == {"codec": "zstd", "block": records.BLOCK_RECORDS}
    assert len(store._dictionary) > 0  # trained on the shard's records
    assert len(store._offsets) == 4  # 3 blocks
    for i in np.random.default_rng(0).permutation(70).tolist() + [69, 31, 32, 0]:
        assert store.raw(i) == raws[i], i
    _assert_same(anchors[40], store.open(40).anchor())
    _assert_same(positives[64][0], store.open(64)[0])
    again = pickle.loads(pickle.dumps(store))
    assert again.raw(33) == raws[33]
    # threads share a store: reads are serialised (zstd's decompressor is not thread-safe)
    from concurrent.futures import ThreadPoolExecutor

    picks = np.random.default_rng(1).integers(0, 70, 400).tolist()
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(store.raw, picks)) == [raws[i] for i in picks]
    # a shard too small to train a dictionary on goes without one
    write_records(data, meta, codec, raws[:3], [0, 1, 2], {"shard": 0})
    small = RecordStore(data, meta)
    assert small._dictionary == b"" and [small.raw(i) for i in range(3)] == raws[:3]
    # a compression this release does not know is refused, with what to do
    layout = json.loads(meta.read_text())
    layout["layout"]["compression"] = {"codec": "brotli", "block": 32}
    meta.write_text(json.dumps(layout))
    with pytest.raises(ValueError, match="unknown record compression"):
        RecordStore(data, meta)


def test_a_prepared_corpus_is_compact(tmp_path: Path) -> None:
    manifest = prepare_corpus(SAMPLE, tmp_path / "c", CorpusConfig(shard_size=100), limit=200, progress=False)
    stores = [RecordStore(p, p.with_suffix(".json")) for p in sorted((tmp_path / "c").glob("*.safetensors"))]
    record_bytes = sum(s.compressed_bytes for s in stores)
    # 5 positives and 118 descriptors per molecule: format 1 took ~2 kB for the same, format 2 (each
    # record alone with zlib) ~420 bytes (the shards' dictionaries, 64 kB each, are left out: they
    # weigh a few bytes per molecule in real-size shards)
    assert record_bytes / manifest["n_molecules"] < 330
    assert {f["name"]: f["stored"] for f in stores[0].codec.to_dict()["anchor_fields"]}[
        "descriptors"
    ] == "uint8"
    corpus = PretrainCorpus(tmp_path / "c")
    assert corpus.format == 3 and len(corpus[0].positives) == 5


def test_format_2_corpora_are_still_read(tmp_path: Path) -> None:
    """A corpus whose shards hold zlib records, one per molecule (format 2), reads as its format-3 twin."""
    new = tmp_path / "new"
    prepare_corpus(SAMPLE, new, CorpusConfig(shard_size=100), limit=60, progress=False)
    old = tmp_path / "old"
    old.mkdir()
    store = RecordStore(new / "shard-00000.records.safetensors", new / "shard-00000.records.json")
    raws = [store.raw(i) for i in range(len(store))]
    key = {**store.key, "format": 2}
    write_records(
        old / "shard-00000.records.safetensors", old / "shard-00000.records.json", store.codec, raws,
        store.row_index.tolist(), key, compression="zlib",
    )  # fmt: skip
    (old / "shard-00000.summary.json").write_text((new / "shard-00000.summary.json").read_text())
    manifest = json.loads((new / "corpus.json").read_text())
    (old / "corpus.json").write_text(json.dumps({**manifest, "format": 2}))
    legacy, twin = PretrainCorpus(old), PretrainCorpus(new)
    assert legacy.format == 2 and len(legacy) == len(twin)
    for i in (0, len(twin) - 1):
        a, b = legacy[i], twin[i]
        _assert_same(a.anchor, b.anchor)
        for j in range(5):
            _assert_same(a.positives[j], b.positives[j])


def test_format_1_corpora_are_still_read(tmp_path: Path) -> None:
    """A corpus written by the column format (1) reads the same molecules as its format-3 twin."""
    from molchannel.data.cache import GraphPacker, save_graph_store
    from molchannel.pretrain import corpus as corpus_module

    new = tmp_path / "new"
    prepare_corpus(SAMPLE, new, CorpusConfig(shard_size=100), limit=60, progress=False)
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((new / "corpus.json").read_text())
    twin = PretrainCorpus(new)
    store = RecordStore(new / "shard-00000.records.safetensors", new / "shard-00000.records.json")
    anchors, positives = GraphPacker(), GraphPacker()
    for i in range(len(store)):
        record = store.open(i)
        anchors.add(record.anchor())
        for g in record:
            positives.add(g)
    for part, packer, rows in (
        ("anchors", anchors, store.row_index.tolist()),
        ("positives", positives, [r for r in store.row_index.tolist() for _ in range(5)]),
    ):
        tensors, fields = packer.tensors()
        tensors["row_index"] = torch.tensor(rows)
        save_graph_store(
            tensors, fields, [], {"format": 1, "n_rows": 60},
            old / f"shard-00000.{part}.safetensors", old / f"shard-00000.{part}.json",
        )  # fmt: skip
    (old / "shard-00000.summary.json").write_text((new / "shard-00000.summary.json").read_text())
    (old / "corpus.json").write_text(json.dumps({**manifest, "format": 1}))
    legacy = PretrainCorpus(old)
    assert legacy.format == 1 and len(legacy) == len(twin)
    for i in (0, len(twin) - 1):
        a, b = legacy[i], twin[i]
        _assert_same(a.anchor, b.anchor)
        assert a.n_real == b.n_real and a.row == b.row
        for j in range(5):
            _assert_same(a.positives[j], b.positives[j])
    assert corpus_module.READ_FORMATS == (1, 2, 3)
