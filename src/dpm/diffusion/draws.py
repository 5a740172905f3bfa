"""Random inputs of the bound's estimator: one time step and standard normal noise per example.

They are drawn with NumPy outside the graph, so every backend gets the same numbers for the
same seed, and the generator's state can be checkpointed and restored exactly.
"""

import numpy as np
import pytensor


def draw_t_and_noise(rng, batch_size, trajectory_length, n_dims):
    """Draw ``t`` uniform on ``2..T`` (int32, shape (batch,)) and noise ``N(0, I)`` (floatX, (batch, D)).

    ``t = 1`` is never drawn because the last reverse step is fixed to the forward one.
    """
    t = rng.integers(2, trajectory_length + 1, size=batch_size).astype(np.int32)
    noise = rng.standard_normal((batch_size, n_dims)).astype(pytensor.config.floatX)
    return t, noise


class DiffusionInputs:
    """A seeded source of ``(t, noise)`` for each training batch.

    Parameters
    ----------
    trajectory_length : int
    n_dims : int
    seed : int
    """

    def __init__(self, trajectory_length, n_dims, seed):
        self.trajectory_length = int(trajectory_length)
        self.n_dims = int(n_dims)
        self.rng = np.random.default_rng(seed)

    def __call__(self, batch_size):
        return draw_t_and_noise(self.rng, batch_size, self.trajectory_length, self.n_dims)

    def get_state(self):
        """Return the generator state, a JSON-serializable dict."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`."""
        self.rng.bit_generator.state = state
