"""Predict a function's accuracy before training it, from a study's finished trials.

Two predictors on the features of :mod:`actsearch.evaluation.features`, both fitted online (a fit
takes milliseconds at the sizes a study has):

- ``gp`` — a Gaussian process on standardized features (each feature mapped through its
  empirical distribution over the pool and the training set to N(0,1), clipped to ±5, so one
  overflowing function does not stretch a dimension; failed functions enter at the worst score):
  Matérn-5/2 kernel times a constant, plus white noise for the seed noise of a score; the
  acquisition is the upper confidence bound mean + κ·sd (Srinivas et al. 2010), κ = 0.75.
- ``knn`` — AQuaSurF's recipe (Bingham & Miikkulainen 2023): a 2-D embedding of the features and
  the mean of the 3 nearest trained neighbours in it. AQuaSurF embeds with UMAP; here the
  embedding is PCA on the standardized features (UMAP would need numba; see the README).

Both carry a *hurdle*: a 5-nearest-neighbour classifier on the standardized (mean/sd) features that
predicts which functions fail (diverge, time out); a function predicted to fail more likely than
not is never proposed. :data:`PREDICTORS` names them; :func:`make_predictor` builds one.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import QuantileTransformer

from ..errors import ActsearchError

__all__ = ["PREDICTORS", "KAPPA", "Prediction", "Predictor", "make_predictor"]

PREDICTORS = ("gp", "knn")
#: The UCB weight on the predicted sd; a prior prototype found 0.75 best on paper-1 at `quick`.
KAPPA = 0.75
_CLIP = 5.0  # standardized features beyond ±5 sd are clipped
_MIN_TRAIN = 3  # fewer successes than this: no regression, every prediction is the prior


@dataclass
class Prediction:
    """Per function: predicted accuracy, its sd, and the probability it fails."""

    mean: np.ndarray
    sd: np.ndarray
    p_fail: np.ndarray

    def acquisition(self, kappa: float = KAPPA) -> np.ndarray:
        """UCB, with predicted failures (p_fail > 0.5) at −inf."""
        return np.where(self.p_fail > 0.5, -np.inf, self.mean + kappa * self.sd)


@dataclass
class Predictor:
    """Fit on (features, accuracy) of trained functions and (features) of failed ones; predict."""

    kind: str = "gp"
    kappa: float = KAPPA
    hurdle: bool = True
    seed: int = 0
    # "quantile": each feature mapped through its empirical CDF (over the pool) to N(0,1) — distances
    # then follow ranks, and no overflowing function sits 50 sd away; "standard": (x − mean) / sd.
    transform: str = "quantile"  # the kNN keeps "standard" (make_predictor): PCA needs the features' own spread
    # Failed functions enter the GP at the worst score seen: the regression itself learns where
    # training fails, not only the hurdle.
    impute: bool = True
    _quantiles: QuantileTransformer | None = field(default=None, repr=False)
    _center: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _pool_ref: np.ndarray | None = field(default=None, repr=False)
    _pool_z: np.ndarray | None = field(default=None, repr=False)
    _scale: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _model: object = field(default=None, repr=False)
    _embed: PCA | None = field(default=None, repr=False)
    _classifier: KNeighborsClassifier | None = field(default=None, repr=False)
    _z: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # the standardized training set
    _y: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _prior: tuple[float, float] = (0.0, 1.0)

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        """(x − mean) / sd, clipped: what the hurdle classifies on (a failure's extreme features are its signature)."""
        return np.clip((x - self._center) / self._scale, -_CLIP, _CLIP)

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        if x is self._pool_ref and self._pool_z is not None:  # the sampler predicts its pool at every ask
            return self._pool_z
        if self._quantiles is not None and len(x):
            return np.clip(self._quantiles.transform(x), -_CLIP, _CLIP)
        return np.clip((x - self._center) / self._scale, -_CLIP, _CLIP)

    def fit(self, ok: np.ndarray, values: np.ndarray, failed: np.ndarray | None = None,
            pool: np.ndarray | None = None) -> Predictor:
        """``ok``: features (n, d) of trained functions with accuracies ``values`` (n,); ``failed``:
        features (m, d) of functions whose training failed; ``pool``: features of the functions
        that will be predicted — the standardization (and the kNN's embedding) is fitted on them
        too, as AQuaSurF fits its UMAP on every candidate (they need no training)."""
        failed = np.zeros((0, ok.shape[1])) if failed is None else failed
        every = np.concatenate([ok, failed] + ([pool] if pool is not None else []))
        if len(every) == 0:
            raise ValueError("nothing to fit on")
        self._center = every.mean(axis=0)
        sd = every.std(axis=0)
        self._scale = np.where(sd > 1e-9, sd, 1.0)
        self._quantiles = None
        if self.transform == "quantile" and len(every) >= 10:
            self._quantiles = QuantileTransformer(n_quantiles=min(1000, len(every)), output_distribution="normal",
                                                  random_state=self.seed).fit(every)
        elif self.transform not in ("quantile", "standard"):
            raise ActsearchError(f"unknown feature transform {self.transform!r} (use quantile or standard)")
        self._pool_ref, self._pool_z = None, None
        if pool is not None:
            self._pool_z = self._standardize(pool)
            self._pool_ref = pool
        z_ok, z_failed = self._standardize(ok), self._standardize(failed)
        values = np.asarray(values, dtype=np.float64)
        self._prior = (float(values.mean()) if len(values) else 0.0,
                       float(values.std()) if len(values) > 1 else 1.0)
        self._model = None
        self._z, self._y = z_ok, values
        if len(values) >= _MIN_TRAIN:
            if self.kind == "gp":
                if self.impute and len(failed):
                    self._z = np.concatenate([z_ok, z_failed])
                    self._y = np.concatenate([values, np.full(len(failed), values.min())])
                self._model = self._fit_gp(self._z, self._y)
            elif self.kind == "knn":
                self._embed = PCA(n_components=min(2, z_ok.shape[1], len(every)), random_state=self.seed).fit(
                    self._standardize(every))
                self._model = KNeighborsRegressor(n_neighbors=min(3, len(values))).fit(self._embed.transform(z_ok),
                                                                                      values)
            else:
                raise ActsearchError(f"unknown predictor {self.kind!r} (use one of: {', '.join(PREDICTORS)})")
        self._classifier = None
        if self.hurdle and len(failed) and len(values):
            labels = np.r_[np.zeros(len(ok)), np.ones(len(failed))]
            self._classifier = KNeighborsClassifier(n_neighbors=min(5, len(labels))).fit(
                self._scaled(np.concatenate([ok, failed])), labels)
        return self

    def _fit_gp(self, z: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
        # Length scale starts at √d (unit-variance features: the typical distance between two
        # functions); the white noise at the seed noise of a score (~1.5 points, the SPEC's scratch runs).
        d = z.shape[1]
        kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(length_scale=np.sqrt(d), length_scale_bounds=(1e-1, 1e3), nu=2.5)
                  + WhiteKernel(0.1, (1e-4, 1.0)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0, random_state=self.seed)
        with warnings.catch_warnings():  # a bound reached on a tiny training set is not worth a warning
            warnings.simplefilter("ignore", ConvergenceWarning)
            return gp.fit(z, y)

    def believe(self, pending: np.ndarray) -> Predictor:
        """Kriging believer (Ginsbourger, Le Riche & Carraro 2010): a copy whose GP also holds the
        ``pending`` functions (asked, not told) at their predicted mean, kernel unchanged — their
        neighbourhood's sd shrinks, so the next ask of a batch looks elsewhere. kNN: unchanged."""
        if not isinstance(self._model, GaussianProcessRegressor) or len(pending) == 0:
            return self
        z_p = self._standardize(pending)
        gp = self._model
        lies = gp.predict(z_p)
        believer = GaussianProcessRegressor(gp.kernel_, normalize_y=True, optimizer=None, random_state=self.seed)
        out = Predictor(self.kind, self.kappa, self.hurdle, self.seed, self.transform, self.impute)
        out._center, out._scale, out._prior, out._classifier = self._center, self._scale, self._prior, self._classifier
        out._quantiles, out._pool_ref, out._pool_z = self._quantiles, self._pool_ref, self._pool_z
        out._z, out._y = np.concatenate([self._z, z_p]), np.concatenate([self._y, lies])
        out._model = believer.fit(out._z, out._y)
        return out

    def predict(self, x: np.ndarray) -> Prediction:
        z = self._standardize(x)
        n = len(z)
        if self._model is None:
            mean, sd = np.full(n, self._prior[0]), np.full(n, self._prior[1])
        elif isinstance(self._model, GaussianProcessRegressor):
            mean, sd = self._model.predict(z, return_std=True)
        else:
            assert self._embed is not None and isinstance(self._model, KNeighborsRegressor)
            e = self._embed.transform(z)
            idx = self._model.kneighbors(e, return_distance=False)
            ys = self._y[idx]  # the neighbours' accuracies
            mean, sd = ys.mean(axis=1), ys.std(axis=1)
        p_fail = (self._classifier.predict_proba(self._scaled(x))[:, list(self._classifier.classes_).index(1.0)]
                  if self._classifier is not None else np.zeros(n))
        return Prediction(np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64), p_fail)


def make_predictor(name: str = "gp", *, kappa: float = KAPPA, hurdle: bool = True, seed: int = 0,
                   transform: str | None = None, impute: bool = True) -> Predictor:
    """The predictor called ``name`` (``gp`` or ``knn``); ``transform`` None: quantile for the GP,
    standard for the kNN (as each was validated)."""
    key = name.strip().lower()
    if key not in PREDICTORS:
        raise ActsearchError(f"unknown predictor {name!r} (use one of: {', '.join(PREDICTORS)})")
    transform = transform or ("quantile" if key == "gp" else "standard")
    return Predictor(key, kappa=kappa, hurdle=hurdle, seed=seed, transform=transform, impute=impute)
