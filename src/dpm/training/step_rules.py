"""Step rules: symbolic parameter updates from gradients, as in Blocks.

A step rule's :meth:`updates` returns a list of ``(shared_variable, new_value)`` pairs that
covers the parameters and the rule's own state; its state variables are listed in ``state``
so that checkpoints can save and restore them.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.basic import NotScalarConstantError, get_underlying_scalar_constant_value
from pytensor.tensor.subtensor import AdvancedIncSubtensor, AdvancedIncSubtensor1

_ADVANCED_INC = (AdvancedIncSubtensor, AdvancedIncSubtensor1)


def _shared_like(parameter, suffix):
    value = np.zeros(parameter.get_value(borrow=True).shape, dtype=parameter.dtype)
    return pytensor.shared(value, name=f"{parameter.name}.{suffix}")


def _scalar(value, name):
    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name)


def touched_rows(gradient):
    """Return the row indexes of a gradient that is zero outside them, or None.

    The gradient of ``W[indexes]`` with respect to ``W`` is built by adding rows into zeros.
    A per-step readout's weights have that gradient, and only the rows of the batch's time
    steps are non-zero.
    """
    node = gradient.owner
    if node is None or not isinstance(node.op, _ADVANCED_INC) or node.op.set_instead_of_inc:
        return None
    base, _, *indexes = node.inputs
    if len(indexes) != 1 or indexes[0].ndim != 1:
        return None
    try:
        if get_underlying_scalar_constant_value(base) != 0:
            return None
    except NotScalarConstantError:
        return None
    return indexes[0]


class _RowUpdates:
    """Updates of a parameter and its state, either whole or only at the touched rows.

    With ``indexes`` None every value is used whole. Otherwise :meth:`take` gathers the rows
    and :meth:`put` writes new rows back, so the update costs as much as the rows touched,
    not the whole parameter. A row that appears twice in ``indexes`` gets the same new value
    both times, because the gradient already sums the batch's contributions to it.
    """

    def __init__(self, indexes):
        self.indexes = indexes

    def take(self, value):
        return value if self.indexes is None else value[self.indexes]

    def put(self, variable, new_rows):
        if self.indexes is None:
            return new_rows
        return pt.set_subtensor(variable[self.indexes], new_rows)


def _row_updates(gradient, lazy):
    return _RowUpdates(touched_rows(gradient) if lazy else None)


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
    lazy : bool, default False
        Update a parameter whose gradient is non-zero only in some rows (see
        :func:`touched_rows`) and its state at those rows alone, as the lazy and sparse
        variants of Adam in TensorFlow Addons and PyTorch do. The state of untouched rows then
        does not decay. It makes a step with per-step readouts for thousands of time steps cost
        as much as the rows in the batch.
    """

    def __init__(self, learning_rate=1e-3, decay_rate=0.9, max_scaling=1e10, lazy=False):
        self.learning_rate = _scalar(learning_rate, "step_rule.learning_rate")
        self.decay_rate = decay_rate
        self.max_scaling = max_scaling
        self.lazy = lazy
        self.state = [self.learning_rate]

    def updates(self, parameters, gradients):
        updates = []
        for parameter, gradient in zip(parameters, gradients):
            mean_square = _shared_like(parameter, "mean_square")
            self.state.append(mean_square)
            rows = _row_updates(gradient, self.lazy)
            gradient = rows.take(gradient)
            new_mean_square = (self.decay_rate * rows.take(mean_square)
                               + (1 - self.decay_rate) * pt.sqr(gradient))
            rms = pt.maximum(pt.sqrt(new_mean_square), 1.0 / self.max_scaling)
            new_parameter = rows.take(parameter) - self.learning_rate * gradient / rms
            updates.append((mean_square, rows.put(mean_square, new_mean_square)))
            updates.append((parameter, rows.put(parameter, new_parameter)))
        return updates


class Adam:
    """Adam (Kingma and Ba 2015) with bias correction.

    Parameters
    ----------
    learning_rate, beta1, beta2, epsilon : float
        The published defaults except the learning rate, which the configuration sets.
    lazy : bool, default False
        Update rows of a row-sparse gradient alone, as :class:`RMSProp` describes. The bias
        correction still counts every step.
    row_scale : float, default 1
        Factor on the learning rate of rows updated lazily. A row that a batch touches
        rarely moves once per touch, where dense Adam's momentum would keep moving it for
        about ``1 / (1 - beta1)`` steps after each touch.
    """

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy=False,
                 row_scale=1.0):
        self.learning_rate = _scalar(learning_rate, "step_rule.learning_rate")
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lazy = lazy
        self.row_scale = float(row_scale)
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
            rows = _row_updates(gradient, self.lazy)
            gradient = rows.take(gradient)
            new_first = self.beta1 * rows.take(first) + (1 - self.beta1) * gradient
            new_second = self.beta2 * rows.take(second) + (1 - self.beta2) * pt.sqr(gradient)
            step = self.learning_rate * correction * new_first / (pt.sqrt(new_second) + self.epsilon)
            if rows.indexes is not None:
                step = self.row_scale * step
            updates += [(first, rows.put(first, new_first)),
                        (second, rows.put(second, new_second)),
                        (parameter, rows.put(parameter, rows.take(parameter) - step))]
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
        # A row-sparse gradient is finite exactly when the rows added into its zeros are.
        squares = [pt.sum(pt.sqr(gradient if touched_rows(gradient) is None
                                 else gradient.owner.inputs[1])) for gradient in gradients]
        self.finite = pt.isfinite(pt.sum(pt.stack(squares)))
        inner = self.rule.updates(parameters, gradients)
        return [(variable, self._keep_unless_finite(variable, new)) for variable, new in inner]

    def _keep_unless_finite(self, variable, new):
        node = new.owner
        if (node is not None and isinstance(node.op, _ADVANCED_INC) and node.op.set_instead_of_inc
                and node.inputs[0] is variable):
            # A lazy update writes rows only, so the choice is made on those rows alone.
            _, rows, *indexes = node.inputs
            old_rows = variable[tuple(indexes)] if len(indexes) > 1 else variable[indexes[0]]
            return pt.set_subtensor(old_rows, pt.switch(self.finite, rows, old_rows))
        return pt.switch(self.finite, new, variable)


def build_step_rule(name, learning_rate, remove_not_finite=True, lazy=False, row_scale=1.0):
    """Build ``'rmsprop'`` or ``'adam'`` by configuration name, wrapped in :class:`RemoveNotFinite`.

    ``lazy`` selects row-wise updates of row-sparse gradients (see :class:`RMSProp`), and
    ``row_scale`` scales Adam's learning rate on those rows.
    """
    rules = {"rmsprop": RMSProp, "adam": Adam}
    if name not in rules:
        raise ValueError(f"unknown step rule {name!r}; choose one of {sorted(rules)}")
    options = {"row_scale": row_scale} if name == "adam" else {}
    rule = rules[name](learning_rate=learning_rate, lazy=lazy, **options)
    return RemoveNotFinite(rule) if remove_not_finite else rule
