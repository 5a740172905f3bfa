"""Monitoring extensions: the bound K on held-out data during training."""

import logging

import numpy as np

from dpm.evaluation.bound import BoundEvaluator
from dpm.training.extensions import SimpleExtension, record_values

logger = logging.getLogger(__name__)


class LogLikelihood(SimpleExtension):
    """Evaluate K and K - L_null, with standard errors, on held-out data and log them.

    Each run evaluates the same points with the same draws of ``xt``, so the values of
    different epochs differ only through the model. K is exact in ``t`` (see
    :class:`BoundEvaluator`), in bits per data point. The values are added to the epoch's
    record (see :func:`record_values`) as ``<prefix>K``, ``<prefix>K_stderr``,
    ``<prefix>K_minus_L_null`` and ``<prefix>K_minus_L_null_stderr``, and the full result of
    the last run is kept in :attr:`latest`.

    Parameters
    ----------
    model : DiffusionModel
    features : ndarray (N, D)
        Held-out data.
    n_points : int, optional
        How many rows of ``features`` to use, all by default; at least 2. A subset is drawn
        without replacement and kept in its original order.
    seed : int
        ``numpy.random.SeedSequence(seed).spawn(2)`` gives the seed of the subset and the
        seed passed to :meth:`BoundEvaluator.evaluate`, :attr:`evaluation_seed`.
    prefix : str
        Prepended to the names in the record.
    batch_size : int
        Examples per call of the compiled functions.
    evaluator : BoundEvaluator, optional
        A compiled evaluator of ``model`` to reuse; one is compiled by default.
    **triggers
        See :class:`SimpleExtension`. The default is every epoch.
    """

    def __init__(self, model, features, n_points=None, seed=0, prefix="test_", batch_size=4096,
                 evaluator=None, **triggers):
        super().__init__(**{"every_n_epochs": 1, **triggers})
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != model.n_dims:
            raise ValueError(f"features must have shape (N, {model.n_dims}), got {features.shape}")
        n_points = len(features) if n_points is None else int(n_points)
        if not 2 <= n_points <= len(features):
            raise ValueError(
                f"n_points must be between 2 and the {len(features)} rows of features, got "
                f"{n_points}; a standard error needs at least 2 points"
            )
        subset_seed, self.evaluation_seed = np.random.SeedSequence(seed).spawn(2)
        if n_points < len(features):
            chosen = np.random.default_rng(subset_seed).choice(len(features), n_points, replace=False)
            features = features[np.sort(chosen)]
        #: The evaluated points, (n_points, D).
        self.points = features
        self.prefix = prefix
        self.batch_size = batch_size
        self.evaluator = evaluator if evaluator is not None else BoundEvaluator(model)
        self.latest = None

    def do(self, event, main_loop):
        names = ("K", "K_stderr", "K_minus_L_null", "K_minus_L_null_stderr")
        try:
            result = self.evaluator.evaluate(self.points, seed=self.evaluation_seed,
                                             batch_size=self.batch_size, progress=False)
        except FloatingPointError as error:
            logger.error("held-out K not evaluated after %d batches: %s",
                         main_loop.log.status["iterations_done"], error)
            record_values(main_loop, event, {self.prefix + name: float("nan") for name in names})
            self.latest = None
            return
        self.latest = result
        record_values(main_loop, event, {self.prefix + name: result[name] for name in names})
        logger.info("held-out K = %.4f +- %.4f bits, K - L_null = %.4f on %d points (%s)",
                    result["K"], result["K_stderr"], result["K_minus_L_null"], len(self.points), event)
