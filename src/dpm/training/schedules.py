"""Learning-rate schedules, as main-loop extensions.

The learning rate is a shared variable of the step rule, saved with the step rule's state,
and each schedule also saves it as its own state, so a resumed run continues the schedule.
"""

import numpy as np

from dpm.training.extensions import SimpleExtension, record_values

#: The reference code's per-epoch factor, ten times smaller per 1000 epochs.
REFERENCE_FACTOR = float(np.exp(np.log(0.1) / 1000))
#: The reference code's floor of the learning rate.
REFERENCE_MINIMUM = 1e-4


class ExponentialDecay(SimpleExtension):
    """Multiply the learning rate by ``factor`` after every epoch, never below ``minimum``.

    The new rate is added to the epoch's record as ``learning_rate``.

    Parameters
    ----------
    learning_rate : shared scalar
        The step rule's ``learning_rate``.
    factor : float
        In (0, 1] to decay.
    minimum : float
    **triggers
        See :class:`SimpleExtension`. The default is every epoch. With ``every_n_batches``
        instead, each decay applies after that many batches.
    """

    def __init__(self, learning_rate, factor, minimum=0.0, **triggers):
        super().__init__(**{"every_n_epochs": 1, **triggers})
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor!r}")
        if not minimum >= 0:
            raise ValueError(f"minimum must be at least 0, got {minimum!r}")
        self.learning_rate = learning_rate
        self.factor = float(factor)
        self.minimum = float(minimum)

    def do(self, event, main_loop):
        value = max(float(self.learning_rate.get_value()) * self.factor, self.minimum)
        self._set(value)
        record_values(main_loop, event, {"learning_rate": value})

    def _set(self, value):
        self.learning_rate.set_value(np.asarray(value, dtype=self.learning_rate.dtype))

    def get_state(self):
        """Return the current rate, ``{'learning_rate': float}``."""
        return {"learning_rate": float(self.learning_rate.get_value())}

    def set_state(self, state):
        self._set(state["learning_rate"])


class ReferenceDecay(ExponentialDecay):
    """The reference code's schedule: a constant factor per epoch down to a floor.

    The reference implementation (Sohl-Dickstein's Diffusion-Probabilistic-Models
    repository, ``decay_learning_rate`` in ``extensions.py``) multiplies the rate by
    ``exp(log(0.1) / 1000)`` per epoch, ten times smaller per 1000 epochs, and stops at
    ``1e-4``. Its ``train.py`` applies it every 500 batches, its fixed epoch length; pass
    ``every_n_batches=500`` for that.

    Parameters
    ----------
    learning_rate : shared scalar
    factor : float
        Per-epoch factor, :data:`REFERENCE_FACTOR` by default.
    minimum : float
        :data:`REFERENCE_MINIMUM` by default.
    **triggers
        See :class:`SimpleExtension`. The default is every epoch.
    """

    def __init__(self, learning_rate, factor=REFERENCE_FACTOR, minimum=REFERENCE_MINIMUM, **triggers):
        super().__init__(learning_rate, factor, minimum, **triggers)


def decay_factor(initial, final, n_epochs):
    """Return the per-epoch factor that takes ``initial`` to ``final`` over ``n_epochs`` epochs."""
    if n_epochs < 1 or initial <= 0 or final <= 0:
        raise ValueError(f"need n_epochs >= 1 and positive rates, got {n_epochs}, {initial}, {final}")
    return float(np.exp(np.log(final / initial) / n_epochs))


#: Names of the learning-rate schedules that :func:`build_schedule` builds.
SCHEDULES = ("to_final", "reference")


def build_schedule(settings, learning_rate, n_epochs):
    """Build the schedule that ``settings['learning_rate_schedule']`` names.

    ``'to_final'`` (the default) decays ``settings['learning_rate']`` to
    ``settings['final_learning_rate']`` over ``n_epochs`` epochs. ``'reference'`` is
    :class:`ReferenceDecay`, with ``settings['decay_factor']`` and
    ``settings['minimum_learning_rate']`` when given.
    """
    name = settings.get("learning_rate_schedule", "to_final")
    if name == "to_final":
        factor = decay_factor(settings["learning_rate"], settings["final_learning_rate"], n_epochs)
        return ExponentialDecay(learning_rate, factor)
    if name == "reference":
        return ReferenceDecay(learning_rate, factor=settings.get("decay_factor", REFERENCE_FACTOR),
                              minimum=settings.get("minimum_learning_rate", REFERENCE_MINIMUM))
    raise ValueError(f"unknown learning_rate_schedule {name!r}; choose one of {SCHEDULES}")
