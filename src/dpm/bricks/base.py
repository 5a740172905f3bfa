"""The :class:`Brick` base class: a named piece of a network that owns parameters.

Bricks form a tree. Each parameter is a ``pytensor.shared`` variable whose ``name`` is
its path, the brick names from the root joined by ``/``, then ``.`` and the parameter
name, for example ``swiss_roll/rbf.centers``. Bricks only build symbolic graphs: they
never compile functions.
"""

import re

import numpy as np
import pytensor

from dpm.bricks.initialization import InitializationScheme
from dpm.bricks.roles import PARAMETER, ParameterRole, add_role

#: Separator between brick names in a parameter path.
BRICK_SEPARATOR = "/"
#: Separator between the brick path and the parameter name.
PARAMETER_SEPARATOR = "."


def default_brick_name(cls):
    """Return the snake_case form of a class name, e.g. ``NormalizedRBF`` -> ``normalized_rbf``."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", cls.__name__)
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words)
    return words.lower()


def _check_name(kind, name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} name must be a non-empty string, got {name!r}")
    for separator in (BRICK_SEPARATOR, PARAMETER_SEPARATOR):
        if separator in name:
            raise ValueError(
                f"{kind} name {name!r} contains {separator!r}, which separates the parts "
                "of a parameter path; choose a name without '/' and '.'"
            )
    return name


class Brick:
    """A named network component with parameters and child bricks.

    Parameters
    ----------
    name : str, optional
        Name of this brick in parameter paths. Defaults to the snake_case class name.
        It must not contain ``/`` or ``.``.
    children : sequence of Brick, optional
        Sub-bricks. Each brick can have one parent only.

    Notes
    -----
    Subclasses call ``super().__init__`` first, then create their parameters with
    :meth:`add_parameter`. Parameters hold NaN until :meth:`initialize` or
    :meth:`set_parameter_values` fills them, so a forgotten initialization shows up as
    NaN outputs instead of as a silently untrained network.

    Parameter names follow the tree. Renaming a brick, or attaching it to a parent,
    renames the shared variables of it and of all bricks below it at once.
    """

    def __init__(self, name=None, children=()):
        if name is None:
            name = default_brick_name(type(self))
        self._name = _check_name("brick", name)
        self._parent = None
        self._children = []
        self._parameters = {}
        self.children = children

    # Tree structure -------------------------------------------------------------

    @property
    def name(self):
        """Name of this brick, one component of its parameters' paths."""
        return self._name

    @name.setter
    def name(self, value):
        self._name = _check_name("brick", value)
        self._rename_parameters()

    @property
    def parent(self):
        """The brick that has this brick as a child, or None for a root."""
        return self._parent

    @property
    def path(self):
        """Brick names from the root to this brick, joined by ``/``."""
        names = []
        brick = self
        while brick is not None:
            names.append(brick.name)
            brick = brick.parent
        return BRICK_SEPARATOR.join(reversed(names))

    @property
    def children(self):
        """Child bricks, in the order their parameters are listed and initialized."""
        return tuple(self._children)

    @children.setter
    def children(self, bricks):
        bricks = list(bricks)
        self._check_new_children(bricks)

        for old in self._children:
            if not any(old is brick for brick in bricks):
                old._parent = None
                old._rename_parameters()
        self._children = bricks
        for child in bricks:
            child._parent = self
            child._rename_parameters()

    def add_child(self, child):
        """Append ``child`` to :attr:`children`."""
        self.children = self._children + [child]

    def _check_new_children(self, bricks):
        ancestors = []
        brick = self
        while brick is not None:
            ancestors.append(brick)
            brick = brick.parent

        for index, child in enumerate(bricks):
            if not isinstance(child, Brick):
                raise TypeError(f"children of brick {self.path!r} must be Bricks, got {child!r}")
            if any(child is earlier for earlier in bricks[:index]):
                raise ValueError(
                    f"brick {child.path!r} is listed twice among the children of {self.path!r}"
                )
            if any(child is ancestor for ancestor in ancestors):
                raise ValueError(
                    f"brick {child.path!r} cannot be a child of {self.path!r} because it "
                    "is that brick or one of its ancestors"
                )
            if child.parent is not None and child.parent is not self:
                raise ValueError(
                    f"brick {child.path!r} already has a parent, so it cannot also be a "
                    f"child of {self.path!r}; create a separate brick for each use"
                )

    def iter_bricks(self):
        """Yield this brick and all bricks below it, depth first, parents before children."""
        yield self
        for child in self._children:
            yield from child.iter_bricks()

    # Parameters -----------------------------------------------------------------

    def add_parameter(self, name, shape, initialization, role=PARAMETER):
        """Create a parameter of this brick as a shared variable in floatX.

        Parameters
        ----------
        name : str
            Name within this brick, unique among its parameters.
        shape : tuple of int
            Fixed shape, also recorded as the static shape of the variable's type.
        initialization : InitializationScheme
            Scheme that :meth:`initialize` uses to fill the parameter.
        role : ParameterRole, default PARAMETER

        Returns
        -------
        pytensor.tensor.sharedvar.TensorSharedVariable
            Filled with NaN until initialized.
        """
        _check_name("parameter", name)
        if name in self._parameters:
            raise ValueError(f"brick {self.path!r} already has a parameter named {name!r}")
        if not isinstance(role, ParameterRole):
            raise TypeError(f"role must be a ParameterRole such as dpm.bricks.WEIGHT, got {role!r}")
        shape = tuple(int(size) for size in shape)

        value = np.full(shape, np.nan, dtype=pytensor.config.floatX)
        variable = pytensor.shared(value, name=self._parameter_path(name), shape=shape)
        variable.tag.brick = self
        variable.tag.local_name = name
        add_role(variable, role)
        self._parameters[name] = variable
        self.set_initialization(name, initialization)
        return variable

    def set_initialization(self, name, initialization):
        """Replace the initialization scheme of this brick's parameter ``name``."""
        if not isinstance(initialization, InitializationScheme):
            raise TypeError(
                f"initialization of {self._parameter_path(name)!r} must be an "
                f"InitializationScheme such as IsotropicGaussian(0.01), got {initialization!r}"
            )
        self.get_parameter(name).tag.initialization = initialization

    def get_parameter(self, name):
        """Return this brick's parameter called ``name`` (its local name, not its path)."""
        try:
            return self._parameters[name]
        except KeyError:
            raise KeyError(
                f"brick {self.path!r} has no parameter named {name!r}; "
                f"its parameters are {sorted(self._parameters)}"
            ) from None

    @property
    def parameters(self):
        """This brick's own parameters, in creation order."""
        return list(self._parameters.values())

    @property
    def all_parameters(self):
        """Parameters of this brick and all bricks below it, in :meth:`iter_bricks` order.

        Raises
        ------
        ValueError
            If two parameters have the same path, which happens when two children of
            one brick share a name.
        """
        found = {}
        for brick in self.iter_bricks():
            for variable in brick._parameters.values():
                if variable.name in found:
                    # Names are unique within a brick, so two bricks share a path.
                    raise ValueError(
                        f"two parameters have the path {variable.name!r} because two "
                        f"bricks have the path {brick.path!r}; rename one of them, or "
                        "one of their ancestors, so that siblings have distinct names"
                    )
                found[variable.name] = variable
        return list(found.values())

    def _parameter_path(self, name):
        return f"{self.path}{PARAMETER_SEPARATOR}{name}"

    def _rename_parameters(self):
        for brick in self.iter_bricks():
            for name, variable in brick._parameters.items():
                variable.name = brick._parameter_path(name)

    # Values -----------------------------------------------------------------------

    def initialize(self, rng):
        """Fill every parameter of this brick and the bricks below it from ``rng``.

        Parameters are drawn one after another in :attr:`all_parameters` order, each
        with its own scheme, so the same seed gives the same values.

        Parameters
        ----------
        rng : numpy.random.Generator
            For example ``numpy.random.default_rng(seed)``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"initialize needs a numpy.random.Generator, got {rng!r}; "
                "pass numpy.random.default_rng(seed)"
            )
        for variable in self.all_parameters:
            shape = variable.type.shape
            value = variable.tag.initialization.generate(rng, shape)
            if value.shape != shape:
                raise ValueError(
                    f"{variable.tag.initialization!r} returned shape {value.shape} for "
                    f"{variable.name!r}, whose shape is {shape}"
                )
            variable.set_value(value.astype(variable.dtype))

    def get_parameter_values(self):
        """Return a copy of every parameter value below this brick, keyed by path.

        Returns
        -------
        dict of str to numpy.ndarray
            In :attr:`all_parameters` order.
        """
        return {variable.name: variable.get_value(borrow=False) for variable in self.all_parameters}

    def set_parameter_values(self, values):
        """Set every parameter below this brick from a dict keyed by path.

        The keys must match :meth:`get_parameter_values` exactly: full paths from the
        root, for all parameters. Values are cast to each parameter's dtype. Nothing is
        changed if any check fails.

        Parameters
        ----------
        values : mapping of str to array_like

        Raises
        ------
        ValueError
            If a path is missing or unknown, or a value has the wrong shape.
        TypeError
            If a value is not numeric.
        """
        variables = {variable.name: variable for variable in self.all_parameters}
        missing = [path for path in variables if path not in values]
        unknown = sorted(path for path in values if path not in variables)
        if missing or unknown:
            raise ValueError(
                f"parameter values do not match brick {self.path!r}: missing {missing}, "
                f"unknown {unknown}; pass one value for each path that "
                "get_parameter_values returns for this brick"
            )

        converted = {}
        for path, variable in variables.items():
            value = np.asarray(values[path])
            if value.dtype.kind not in "fiu":
                raise TypeError(f"value for {path!r} must be numeric, got dtype {value.dtype}")
            if value.shape != variable.type.shape:
                raise ValueError(
                    f"value for {path!r} has shape {value.shape}, but the parameter has "
                    f"shape {variable.type.shape}; pass values saved from a network built "
                    "with the same dimensions"
                )
            converted[path] = value.astype(variable.dtype)

        for path, variable in variables.items():
            variable.set_value(converted[path])

    def __repr__(self):
        return f"<{type(self).__name__} {self.path!r}>"
