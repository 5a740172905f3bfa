"""Learning-rate schedules, as main-loop extensions."""

import numpy as np

from dpm.training.extensions import SimpleExtension


class ExponentialDecay(SimpleExtension):
    """Multiply the learning rate by ``factor`` after every epoch, never below ``minimum``.

    The reference code uses ``factor = exp(log(0.1) / 1000)`` (ten times smaller per 1000
    epochs) and ``minimum = 1e-4``.
    """

    def __init__(self, learning_rate, factor, minimum=0.0):
        super().__init__(every_n_epochs=1)
        self.learning_rate = learning_rate
        self.factor = factor
        self.minimum = minimum

    def do(self, event, main_loop):
        value = max(float(self.learning_rate.get_value()) * self.factor, self.minimum)
        self.learning_rate.set_value(np.asarray(value, dtype=self.learning_rate.dtype))
        main_loop.log.records[-1]["learning_rate"] = value


def decay_factor(initial, final, n_epochs):
    """Return the per-epoch factor that takes ``initial`` to ``final`` over ``n_epochs`` epochs."""
    if n_epochs < 1 or initial <= 0 or final <= 0:
        raise ValueError(f"need n_epochs >= 1 and positive rates, got {n_epochs}, {initial}, {final}")
    return float(np.exp(np.log(final / initial) / n_epochs))
