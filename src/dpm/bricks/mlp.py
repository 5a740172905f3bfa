"""Multilayer perceptron: a stack of Linear bricks, each followed by an activation."""

from dpm.bricks.activations import Identity
from dpm.bricks.base import Brick
from dpm.bricks.linear import Linear, check_dimension


class MLP(Brick):
    """Stack of :class:`Linear` layers, each followed by its activation.

    Parameters
    ----------
    activations : sequence of (Brick or None)
        One per layer. Each brick needs an ``apply(x)`` method, and None or
        :class:`Identity` leaves the layer linear. The same instance may be listed for
        several layers. Activation bricks that own parameters become children of the
        MLP, so they can serve one MLP only. Parameter-free ones are not attached, so
        one instance can serve several MLPs, as one LeakyRectifier does in the authors'
        Theano code.
    dims : sequence of int
        ``len(activations) + 1`` sizes: the input size, then each layer's output size.
    weights_init : InitializationScheme
        Scheme for every layer's weights.
    biases_init : InitializationScheme, optional
        Scheme for every layer's biases, Constant(0) by default.
    use_bias : bool, default True
    name : str, optional

    Notes
    -----
    Layer ``i`` is the child brick ``linear_<i>``, so its weights have the path
    ``<mlp path>/linear_<i>.W``.
    """

    def __init__(
        self, activations, dims, weights_init, biases_init=None, use_bias=True, name=None
    ):
        super().__init__(name=name)
        activations = list(activations)
        dims = [check_dimension("every entry of dims", dim) for dim in dims]
        if not activations:
            raise ValueError("MLP needs at least one layer, got an empty activations list")
        if len(dims) != len(activations) + 1:
            raise ValueError(
                f"MLP got {len(activations)} activations and {len(dims)} dims; dims needs "
                "one entry more than activations: the input size, then one output size "
                "per layer"
            )
        for activation in activations:
            if activation is None:
                continue
            if not (isinstance(activation, Brick) and hasattr(activation, "apply")):
                raise TypeError(
                    f"each activation must be a Brick with apply() or None, got {activation!r}"
                )

        self.dims = dims
        self.activations = [
            Identity() if activation is None else activation for activation in activations
        ]
        self.linear_transformations = [
            Linear(
                dims[i],
                dims[i + 1],
                weights_init,
                biases_init,
                use_bias=use_bias,
                name=f"linear_{i}",
            )
            for i in range(len(activations))
        ]

        # Only activations with parameters need a place in the tree, and an instance
        # listed for several layers is attached once.
        activations_with_parameters = []
        for activation in self.activations:
            if not activation.all_parameters:
                continue
            if not any(activation is seen for seen in activations_with_parameters):
                activations_with_parameters.append(activation)
        self.children = self.linear_transformations + activations_with_parameters

    @property
    def input_dim(self):
        """Size of the last axis of the input."""
        return self.dims[0]

    @property
    def output_dim(self):
        """Size of the last axis of the output."""
        return self.dims[-1]

    def apply(self, x):
        """Map ``x`` of shape ``(..., dims[0])`` to shape ``(..., dims[-1])``."""
        for linear, activation in zip(self.linear_transformations, self.activations):
            x = activation.apply(linear.apply(x))
        return x
