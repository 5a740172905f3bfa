"""Readout layer with a separate affine map for each diffusion time step."""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.raise_op import Assert

from dpm.bricks.base import Brick
from dpm.bricks.initialization import Constant
from dpm.bricks.linear import check_dimension
from dpm.bricks.roles import BIAS, WEIGHT
from dpm.bricks.temporal import bump_basis


class PerStepReadout(Brick):
    """Affine maps indexed by time step, applied on top of layers shared by all steps.

    dpm's swiss roll network puts one readout per time step above a hidden layer that
    all steps share. Example ``i`` of a batch is mapped by the weights of its own
    step: ``h[i] @ W[step[i]] + b[step[i]]``.

    Parameters
    ----------
    input_dim, output_dim : int
    n_steps : int
        Number of time steps, so valid steps are ``0 .. n_steps - 1``.
    weights_init : InitializationScheme
        Scheme for ``W``, shape ``(n_steps, input_dim, output_dim)``, role WEIGHT.
    biases_init : InitializationScheme, optional
        Scheme for ``b``, shape ``(n_steps, output_dim)``, role BIAS. Constant(0) by
        default.
    n_basis : int, default 0
        With ``n_basis >= 2``, step ``s`` maps by ``W[s] + sum_j B[s, j] W_basis[j]`` (and
        likewise for the bias), where ``B`` is :func:`~dpm.bricks.temporal.bump_basis`
        and ``W_basis``, ``b_basis`` are shared by all steps and start at zero. The maps
        that the readout can express are the same as with ``n_basis = 0``: only the
        parameterization differs. Every batch then trains the shared part, which moves the
        readouts of neighbouring steps together, while each ``W[s]`` learns only from the
        examples of step ``s``.
    basis_width : {'reference', 'paper'} or float, default 'reference'
        Width of the bumps, see :func:`~dpm.bricks.temporal.bump_basis`.
    name : str, optional
    """

    def __init__(self, input_dim, output_dim, n_steps, weights_init, biases_init=None,
                 n_basis=0, basis_width="reference", name=None):
        super().__init__(name=name)
        self.input_dim = check_dimension("input_dim", input_dim)
        self.output_dim = check_dimension("output_dim", output_dim)
        self.n_steps = check_dimension("n_steps", n_steps)
        if biases_init is None:
            biases_init = Constant(0.0)
        weights_shape = (self.n_steps, self.input_dim, self.output_dim)
        self.add_parameter("W", weights_shape, weights_init, WEIGHT)
        self.add_parameter("b", (self.n_steps, self.output_dim), biases_init, BIAS)
        if isinstance(n_basis, bool) or int(n_basis) != n_basis or n_basis < 0 or n_basis == 1:
            raise ValueError(f"n_basis must be 0 (no shared part) or an integer of at least 2, got {n_basis!r}")
        self.n_basis = int(n_basis)
        self.basis = None
        if self.n_basis:
            # Float64, shape (n_steps, n_basis). Rows sum to 1, so a constant W_basis adds the same
            # map to every step.
            self.basis = bump_basis(self.n_steps, self.n_basis, basis_width)
            self.add_parameter("W_basis", (self.n_basis, self.input_dim, self.output_dim),
                               Constant(0.0), WEIGHT)
            self.add_parameter("b_basis", (self.n_basis, self.output_dim), Constant(0.0), BIAS)

    @property
    def W(self):
        """Weights, shape ``(n_steps, input_dim, output_dim)``."""
        return self.get_parameter("W")

    @property
    def b(self):
        """Biases, shape ``(n_steps, output_dim)``."""
        return self.get_parameter("b")

    def step_maps(self):
        """Return the weights and biases that each step applies, as float64 arrays.

        Shapes ``(n_steps, input_dim, output_dim)`` and ``(n_steps, output_dim)``: ``W`` and
        ``b`` plus the shared part when ``n_basis`` is set.
        """
        W = self.W.get_value().astype("float64")
        b = self.b.get_value().astype("float64")
        if self.n_basis:
            W = W + np.tensordot(self.basis, self.get_parameter("W_basis").get_value(), axes=1)
            b = b + self.basis @ self.get_parameter("b_basis").get_value()
        return W, b

    def _maps(self, step):
        """Return the symbolic weights and biases of ``step`` (any shape of integer steps)."""
        W, b = self.W[step], self.b[step]
        if not self.n_basis:
            return W, b
        basis = pt.constant(self.basis.astype(pytensor.config.floatX))[step]
        W = W + pt.tensordot(basis, self.get_parameter("W_basis"), axes=1)
        return W, b + pt.dot(basis, self.get_parameter("b_basis"))

    def apply(self, h, step, n_groups=None):
        """Map each example ``h[i]`` with the readout of its step ``step[i]``.

        Parameters
        ----------
        h : TensorVariable
            Shape ``(batch, input_dim)``.
        step : TensorVariable
            Integer steps, shape ``(batch,)`` for one step per example, or a scalar for
            the same step for the whole batch.
        n_groups : int, optional
            Promise that the batch is ``n_groups`` equal contiguous blocks, each with one
            step. Each block is then one matrix product with its step's weights, and the
            gradient with respect to ``W`` has ``n_groups`` non-zero rows instead of one
            (input_dim, output_dim) outer product per example. The promise is not checked.

        Returns
        -------
        TensorVariable
            Shape ``(batch, output_dim)``.

        Raises
        ------
        TypeError
            If ``step`` is not an integer scalar or vector.
        AssertionError
            When the compiled function runs with a step outside ``[0, n_steps)``,
            because negative indexes would otherwise silently select steps from the end.
        """
        step = pt.as_tensor_variable(step)
        if not step.dtype.startswith(("int", "uint")) or step.ndim > 1:
            raise TypeError(
                f"step must be an integer scalar or vector, got {step.type}; "
                "cast it with pytensor.tensor.cast(step, 'int64')"
            )
        in_range = pt.all(pt.ge(step, 0) & pt.lt(step, self.n_steps))
        step = Assert(f"{self.path}: every step must be in [0, {self.n_steps})")(step, in_range)

        if step.ndim == 0:
            weights, biases = self._maps(step)
            return pt.dot(h, weights) + biases

        if n_groups is not None:
            n_groups = int(n_groups)
            # Reshapes with constant sizes keep the graph traceable by JAX. One 2-D product
            # per block, because batched 3-D products run as a Python loop on the C backend.
            blocks = h.reshape((n_groups, -1, self.input_dim))
            weights, biases = self._maps(step.reshape((n_groups, -1))[:, 0])
            output = pt.concatenate([pt.dot(blocks[g], weights[g]) for g in range(n_groups)])
            return (output.reshape((n_groups, -1, self.output_dim))
                    + biases[:, None, :]).reshape(output.shape)

        # Gathering gives (batch, input_dim, output_dim), and the elementwise product
        # summed over input_dim is a batched matrix-vector product.
        weights, biases = self._maps(step)
        return pt.sum(h[:, :, None] * weights, axis=1) + biases
