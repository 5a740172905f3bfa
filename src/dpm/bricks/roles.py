"""Roles that mark what a parameter does (weight, bias, RBF center, ...).

A role is stored in the ``roles`` list of a variable's ``tag``, so training code can
select parameters by role, for example to apply weight decay to weights only.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterRole:
    """A named role, optionally more specific than a parent role.

    Parameters
    ----------
    name : str
        Name shown in messages and reprs.
    parent : ParameterRole, optional
        The more general role. A variable with this role also has the parent's role
        for :func:`has_role`.
    """

    name: str
    parent: "ParameterRole | None" = None

    def is_a(self, other):
        """Return True if this role is ``other`` or a descendant of ``other``."""
        role = self
        while role is not None:
            if role == other:
                return True
            role = role.parent
        return False

    def __repr__(self):
        return self.name.upper()


#: Any trainable parameter. All other roles here are descendants of it.
PARAMETER = ParameterRole("parameter")
#: Matrix of a linear map.
WEIGHT = ParameterRole("weight", PARAMETER)
#: Additive offset of a linear map.
BIAS = ParameterRole("bias", PARAMETER)
#: Center of a radial basis function.
CENTER = ParameterRole("center", PARAMETER)
#: Width of a radial basis function, in any parametrization (the bricks store log widths).
WIDTH = ParameterRole("width", PARAMETER)


def add_role(var, role):
    """Attach ``role`` to ``var.tag.roles``, unless the variable already has exactly that role.

    Parameters
    ----------
    var : pytensor.graph.basic.Variable
        Usually the shared variable of a parameter.
    role : ParameterRole

    Raises
    ------
    TypeError
        If ``role`` is not a :class:`ParameterRole`.
    """
    if not isinstance(role, ParameterRole):
        raise TypeError(
            f"role must be a ParameterRole such as dpm.bricks.WEIGHT, got {role!r}"
        )
    roles = list(getattr(var.tag, "roles", []))
    if role not in roles:
        roles.append(role)
    var.tag.roles = roles


def has_role(var, role):
    """Return True if ``var`` has ``role`` or a role descended from it.

    For example every variable with role ``WEIGHT`` also has role ``PARAMETER``.
    """
    return any(attached.is_a(role) for attached in getattr(var.tag, "roles", []))
