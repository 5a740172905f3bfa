"""Step rules: symbolic parameter updates from gradients, as in Blocks.

A step rule's :meth:`updates` returns a list of ``(shared_variable, new_value)`` pairs that
covers the parameters and the rule's own state; its state variables are listed in ``state``
so that checkpoints can save and restore them.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt


def _shared_like(parameter, suffix):
    value = np.zeros(parameter.get_value(borrow=True).shape, dtype=parameter.dtype)
    return pytensor.shared(value, name=f"{parameter.name}.{suffix}")


def _scalar(value, name):
    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name)


class RMSProp:
    """RMSProp with the reference code's settings.

    ``ms = decay_rate ms + (1 - decay_rate) g^2``;
    ``step = learning_rate g / max(sqrt(ms), 1 / max_scaling)``.

    Parameters
    ----------
    learning_rate : float
        1e-3 in the reference code; a shared variable so that schedules can change it.
    decay_rate : float
        0.9, the Blocks default the reference code kept.
    max_scaling : float
        1e10 in the reference code; bounds the step when ``ms`` is tiny.
    """

    def __init__(self, learning_rate=1e-3, decay_rate=0.9, max_scaling=1e10):
        self.learning_rate = _scalar(learning_rate, "step_rule.learning_rate")
        self.decay_rate = decay_rate
        self.max_scaling = max_scaling
        self.state = [self.learning_rate]

    def updates(self, parameters, gradients):
        updates = []
        for parameter, gradient in zip(parameters, gradients):
            mean_square = _shared_like(parameter, "mean_square")
            self.state.append(mean_square)
            new_mean_square = self.decay_rate * mean_square + (1 - self.decay_rate) * pt.sqr(gradient)
            rms = pt.maximum(pt.sqrt(new_mean_square), 1.0 / self.max_scaling)
            updates.append((mean_square, new_mean_square))
            updates.append((parameter, parameter - self.learning_rate * gradient / rms))
        return updates


class Adam:
    """Adam (Kingma and Ba 2015) with bias correction.

    Parameters
    ----------
    learning_rate, beta1, beta2, epsilon : float
        The published defaults except the learning rate, which the configuration sets.
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate = _scalar(learning_rate, "step_rule.learning_rate")
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.time = _scalar(0.0, "step_rule.time")
        self.state = [self.learning_rate, self.time]

    def updates(self, parameters, gradients):
        time = self.time + 1.0
        correction = pt.sqrt(1.0 - self.beta2**time) / (1.0 - self.beta1**time)
        updates = [(self.time, time)]
        for parameter, gradient in zip(parameters, gradients):
            first = _shared_like(parameter, "adam_m")
            second = _shared_like(parameter, "adam_v")
            self.state += [first, second]
            new_first = self.beta1 * first + (1 - self.beta1) * gradient
            new_second = self.beta2 * second + (1 - self.beta2) * pt.sqr(gradient)
            step = self.learning_rate * correction * new_first / (pt.sqrt(new_second) + self.epsilon)
            updates += [(first, new_first), (second, new_second), (parameter, parameter - step)]
        return updates


class RemoveNotFinite:
    """Wrap a step rule so that a step with any non-finite gradient changes nothing.

    The wrapped rule's updates, its state included, are kept only when every gradient is
    finite. ``finite`` is the symbolic flag, which the training algorithm returns so that the
    main loop counts and logs each skipped step (the reference code and Blocks drop them
    silently).
    """

    def __init__(self, rule):
        self.rule = rule
        self.learning_rate = rule.learning_rate
        self.finite = None

    @property
    def state(self):
        return self.rule.state

    def updates(self, parameters, gradients):
        squares = [pt.sum(pt.sqr(gradient)) for gradient in gradients]
        self.finite = pt.isfinite(pt.sum(pt.stack(squares)))
        inner = self.rule.updates(parameters, gradients)
        return [(variable, pt.switch(self.finite, new, variable)) for variable, new in inner]


def build_step_rule(name, learning_rate, remove_not_finite=True):
    """Build ``'rmsprop'`` or ``'adam'`` by configuration name, wrapped in :class:`RemoveNotFinite`."""
    rules = {"rmsprop": RMSProp, "adam": Adam}
    if name not in rules:
        raise ValueError(f"unknown step rule {name!r}; choose one of {sorted(rules)}")
    rule = rules[name](learning_rate=learning_rate)
    return RemoveNotFinite(rule) if remove_not_finite else rule
