"""Per-step readouts in training: grouped time steps and lazy row-wise step rules, against NumPy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dpm import backend
from dpm.bricks import Brick, Constant, IsotropicGaussian, PerStepReadout
from dpm.training.step_rules import Adam, RemoveNotFinite, RMSProp, touched_rows

N_ROWS = 6
INITIAL_W = np.arange(N_ROWS * 2, dtype=float).reshape(N_ROWS, 2) / 10 - 0.5
INITIAL_C = np.array([0.3, -0.2])
# Row indexes per batch, with repeats and with rows that no batch of a step touches.
BATCHES = [np.array([1, 4, 1]), np.array([0, 4, 4]), np.array([1, 5, 2])]


def numpy_gradients(W, c, rows, x):
    """Return the gradients of ``sum_i (W[rows[i]] . x[i] + c . x[i])^2`` in NumPy."""
    residual = np.sum(W[rows] * x, axis=1) + x @ c
    grad_W = np.zeros_like(W)
    np.add.at(grad_W, rows, 2 * residual[:, None] * x)
    grad_c = 2 * residual @ x
    return grad_W, grad_c


class LazyReference:
    """Lazy Adam or RMSProp in NumPy: ``W``'s state changes only at the rows a batch touches."""

    def __init__(self, rule, settings):
        self.rule, self.settings = rule, settings
        self.W, self.c = INITIAL_W.copy(), INITIAL_C.copy()
        self.state_W = [np.zeros_like(self.W), np.zeros_like(self.W)]
        self.state_c = [np.zeros_like(self.c), np.zeros_like(self.c)]
        self.time = 0

    def _update(self, value, gradient, state):
        lr = self.settings["learning_rate"]
        if self.rule == "rmsprop":
            decay = self.settings["decay_rate"]
            state[0] = decay * state[0] + (1 - decay) * gradient**2
            return value - lr * gradient / np.maximum(np.sqrt(state[0]), 1e-10)
        correction = np.sqrt(1 - 0.999**self.time) / (1 - 0.9**self.time)
        state[0] = 0.9 * state[0] + 0.1 * gradient
        state[1] = 0.999 * state[1] + 0.001 * gradient**2
        return value - lr * correction * state[0] / (np.sqrt(state[1]) + 1e-8)

    def step(self, rows, x):
        self.time += 1
        grad_W, grad_c = numpy_gradients(self.W, self.c, rows, x)
        touched = np.unique(rows)
        row_state = [s[touched] for s in self.state_W]
        self.W[touched] = self._update(self.W[touched], grad_W[touched], row_state)
        for full, part in zip(self.state_W, row_state):
            full[touched] = part
        self.c = self._update(self.c, grad_c, self.state_c)


def compile_problem(rule_class, settings):
    brick = Brick(name="rows")
    W = brick.add_parameter("W", INITIAL_W.shape, Constant(0.0))
    c = brick.add_parameter("c", INITIAL_C.shape, Constant(0.0))
    W.set_value(INITIAL_W.copy())
    c.set_value(INITIAL_C.copy())
    rows = pt.lvector("rows")
    x = pt.dmatrix("x")
    cost = pt.sum(pt.sqr(pt.sum(W[rows] * x, axis=1) + pt.dot(x, c)))
    gradients = pytensor.grad(cost, [W, c])
    rule = RemoveNotFinite(rule_class(lazy=True, **settings))
    updates = rule.updates([W, c], gradients)
    return W, c, gradients, backend.compile_function([rows, x], [], updates=updates)


@pytest.mark.parametrize("rule, rule_class, settings", [
    ("adam", Adam, {"learning_rate": 0.05}),
    ("rmsprop", RMSProp, {"learning_rate": 0.05, "decay_rate": 0.9}),
])
def test_lazy_rule_matches_numpy(float64_mode, rule, rule_class, settings):
    W, c, gradients, step = compile_problem(rule_class, settings)
    assert touched_rows(gradients[0]) is not None
    assert touched_rows(gradients[1]) is None
    reference = LazyReference(rule, settings)
    rng = np.random.default_rng(4)
    for rows in BATCHES:
        x = rng.normal(size=(len(rows), 2))
        step(rows, x)
        reference.step(rows, x)
        np.testing.assert_allclose(W.get_value(), reference.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c.get_value(), reference.c, rtol=1e-12, atol=1e-14)
    # Row 3 is in no batch, so it never moved.
    np.testing.assert_array_equal(W.get_value()[3], INITIAL_W[3])


def test_lazy_rule_skips_nonfinite_step(float64_mode):
    W, c, _, step = compile_problem(Adam, {"learning_rate": 0.05})
    step(BATCHES[0], np.ones((3, 2)))
    before = W.get_value(), c.get_value()
    step(BATCHES[1], np.array([[1.0, np.inf], [0.0, 1.0], [1.0, 1.0]]))
    np.testing.assert_array_equal(W.get_value(), before[0])
    np.testing.assert_array_equal(c.get_value(), before[1])


def test_grouped_readout_equals_per_example_readout(float64_mode):
    readout = PerStepReadout(4, 3, 7, IsotropicGaussian(), IsotropicGaussian())
    readout.initialize(np.random.default_rng(8))
    h = pt.dmatrix("h")
    steps = pt.ivector("steps")
    weights = pt.dmatrix("weights")
    outputs = []
    for n_groups in (None, 3):
        output = readout.apply(pt.specify_shape(h, (9, 4)), steps, n_groups=n_groups)
        gradients = pytensor.grad(pt.sum(output * weights), [readout.W, readout.b, h])
        outputs += [output, *gradients]
    function = backend.compile_function([h, steps, weights], outputs)
    rng = np.random.default_rng(9)
    values = function(rng.normal(size=(9, 4)), np.repeat([5, 0, 5], 3).astype(np.int32),
                      rng.normal(size=(9, 3)))
    for per_example, grouped in zip(values[:4], values[4:]):
        np.testing.assert_allclose(grouped, per_example, rtol=1e-12, atol=1e-14)
