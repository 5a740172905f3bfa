"""Random inputs of the bound's estimator: one time step and one noise array per example.

They are drawn with NumPy outside the graph, so every backend gets the same numbers for the
same seed, and the generator's state can be checkpointed and restored exactly. The noise is
standard normal for Gaussian diffusion and uniform on [0, 1) for binomial diffusion, and each
process's ``draw_noise(rng, shape)`` method draws its own kind.
"""

import numpy as np
import pytensor


def standard_normal_noise(rng, shape):
    """Draw standard normal noise in floatX, the noise of Gaussian diffusion."""
    return rng.standard_normal(shape).astype(pytensor.config.floatX)


#: Ways to draw the time steps of a batch; each gives every example a ``t`` uniform on ``2..T``.
T_SAMPLINGS = ("uniform", "stratified")


def draw_t(rng, batch_size, trajectory_length, how="uniform", groups=None):
    """Draw one ``t`` per example, each marginally uniform on ``2..T``, as int32 (batch,).

    ``t = 1`` is never drawn because the last reverse step is fixed to the forward one.

    Parameters
    ----------
    how : {'uniform', 'stratified'}
        'uniform' draws independently. 'stratified' cuts ``2..T`` into as many equal slices
        as there are draws, draws one ``t`` uniformly in each and shuffles them, so a batch
        covers the whole trajectory and its average KL term has less variance.
    groups : int, optional
        Draw only this many steps and give each to a contiguous block of
        ``batch_size / groups`` examples, which must divide evenly. One group is what the
        reference code does (one ``t`` per minibatch). Networks with per-step readouts then
        compute one matrix product per block (see ``DiffusionModel.reverse``).
    """
    n_draws = batch_size if groups is None else int(groups)
    if n_draws < 1 or batch_size % n_draws:
        raise ValueError(
            f"t groups {groups!r} must be a positive divisor of the batch size {batch_size}; "
            "change t_groups or batch_size"
        )
    if how == "uniform":
        t = rng.integers(2, trajectory_length + 1, size=n_draws)
    elif how == "stratified":
        # u is uniform on [0, 1) for every draw, so floor(u (T - 1)) is uniform on 0..T-2.
        u = (rng.permutation(n_draws) + rng.random(n_draws)) / n_draws
        t = 2 + np.floor(u * (trajectory_length - 1))
    else:
        raise ValueError(f"unknown t sampling {how!r}; choose one of {T_SAMPLINGS}")
    return np.repeat(t, batch_size // n_draws).astype(np.int32)


def draw_t_and_noise(rng, batch_size, trajectory_length, n_dims, draw_noise=standard_normal_noise,
                     t_sampling="uniform", t_groups=None):
    """Draw ``t`` on ``2..T`` (int32, shape (batch,)) and noise (floatX, (batch, D)).

    ``t_sampling`` and ``t_groups`` are :func:`draw_t`'s ``how`` and ``groups``, and
    ``draw_noise(rng, shape)`` draws the noise, standard normal by default.
    """
    t = draw_t(rng, batch_size, trajectory_length, t_sampling, t_groups)
    noise = draw_noise(rng, (batch_size, n_dims))
    return t, noise


class DiffusionInputs:
    """A seeded source of ``(t, noise)`` for each training batch.

    Parameters
    ----------
    trajectory_length : int
    n_dims : int
    seed : int
    draw_noise : callable, optional
        ``draw_noise(rng, shape)``, usually the diffusion process's ``draw_noise`` method;
        standard normal noise by default.
    t_sampling : {'uniform', 'stratified'}, default 'uniform'
    t_groups : int, optional
        See :func:`draw_t`.
    """

    def __init__(self, trajectory_length, n_dims, seed, draw_noise=standard_normal_noise,
                 t_sampling="uniform", t_groups=None):
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"unknown t sampling {t_sampling!r}; choose one of {T_SAMPLINGS}")
        self.t_sampling = t_sampling
        self.t_groups = t_groups
        self.trajectory_length = int(trajectory_length)
        self.n_dims = int(n_dims)
        self.rng = np.random.default_rng(seed)
        self.draw_noise = draw_noise

    def __call__(self, batch_size):
        return draw_t_and_noise(self.rng, batch_size, self.trajectory_length, self.n_dims,
                                self.draw_noise, self.t_sampling, self.t_groups)

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state
