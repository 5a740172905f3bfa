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


def draw_t_and_noise(rng, batch_size, trajectory_length, n_dims, draw_noise=standard_normal_noise):
    """Draw ``t`` uniform on ``2..T`` (int32, shape (batch,)) and noise (floatX, (batch, D)).

    ``t = 1`` is never drawn because the last reverse step is fixed to the forward one.
    ``draw_noise(rng, shape)`` draws the noise, standard normal by default.
    """
    t = rng.integers(2, trajectory_length + 1, size=batch_size).astype(np.int32)
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
    """

    def __init__(self, trajectory_length, n_dims, seed, draw_noise=standard_normal_noise):
        self.trajectory_length = int(trajectory_length)
        self.n_dims = int(n_dims)
        self.rng = np.random.default_rng(seed)
        self.draw_noise = draw_noise

    def __call__(self, batch_size):
        return draw_t_and_noise(self.rng, batch_size, self.trajectory_length, self.n_dims,
                                self.draw_noise)

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state
