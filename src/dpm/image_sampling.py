"""Samples, inpainting and denoising of a trained image model, as image grids in stored units."""

import logging
import math

import numpy as np
from matplotlib.figure import Figure

from dpm.diffusion.sampling import ReverseSampler
from dpm.image_data import spawn_seeds
from dpm.training.plots import save_png, tile_images

logger = logging.getLogger(__name__)

#: Noise standard deviation of the denoising figure during training, in model units (the
#: training data have unit variance). Sohl-Dickstein et al. 2015 denoise CIFAR-10 with
#: noise variance 1 on data of unit variance (their Figure 3).
DEFAULT_DENOISE_SIGMA = 1.0


def centre_mask(image_shape):
    """Return a (C, H, W) 0/1 mask that is 0 on the centre half of the height and width, 1 elsewhere.

    The 1s mark the known pixels of an inpainting.
    """
    _, height, width = image_shape
    mask = np.ones(image_shape)
    top, left = height // 4, width // 4
    mask[:, top:top + height - 2 * (height // 4), left:left + width - 2 * (width // 4)] = 0
    return mask


class ImageSampler:
    """Draw samples, inpaintings and denoisings of ``model`` and return them in stored units.

    The reverse kernel is compiled on first use, once per image shape.

    Parameters
    ----------
    model : ImageDiffusionModel
    image_data : ImageData
        Gives the map from model units back to stored pixel values.
    """

    def __init__(self, model, image_data):
        self.model = model
        self.image_data = image_data
        self._samplers = {}

    def sampler(self, image_shape=None):
        """Return the :class:`ReverseSampler` for (C, H, W) images, the model's shape by default."""
        image_shape = tuple(self.model.image_shape if image_shape is None else image_shape)
        if image_shape not in self._samplers:
            self._samplers[image_shape] = ReverseSampler(self.model, image_shape)
        return self._samplers[image_shape]

    def _stored(self, x):
        return self.image_data.to_stored_units(x)

    def samples(self, n_images, seed, image_shape=None, progress=False):
        """Return ``{'samples': (n, C, H, W)}``."""
        x0, _ = self.sampler(image_shape).sample(n_images, seed, progress=progress)
        return {"samples": self._stored(x0)}

    def inpaint(self, rows, seed, progress=False):
        """Fill the centre of held-out ``rows`` (N, C*H*W) in model units.

        Returns ``{'inpainting_input': known pixels with the hole at the data's minimum,
        'inpainting': the completed images}``.
        """
        images = np.asarray(rows).reshape((-1, *self.model.image_shape))
        mask = np.broadcast_to(centre_mask(self.model.image_shape), images.shape)
        x0, _ = self.sampler().inpaint(images, mask, seed, progress=progress)
        shown = np.where(mask == 1, images, images.min())
        return {"inpainting_input": self._stored(shown), "inpainting": self._stored(x0)}

    def denoise(self, rows, sigma, seed, progress=False):
        """Denoise held-out ``rows`` (N, C*H*W) after adding Gaussian noise of standard deviation ``sigma``.

        ``sigma`` is in model units, where the training data have unit variance. Returns
        ``{'denoising_input': the noisy images, 'denoising': the denoised ones}``.
        """
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"denoising sigma must be a positive number, got {sigma}")
        images = np.asarray(rows, dtype=np.float64).reshape((-1, *self.model.image_shape))
        noise_seed, sample_seed = spawn_seeds(seed, 2)
        noisy = images + sigma * np.random.default_rng(noise_seed).standard_normal(images.shape)
        sampler = self.sampler()
        x0, _ = sampler.denoise(noisy.astype(sampler.floatX), sigma ** 2,
                                sample_seed, progress=progress)
        return {"denoising_input": self._stored(noisy), "denoising": self._stored(x0)}


def write_image_grid(images, path, title):
    """Write (N, C, H, W) images in stored units to ``path`` as one grid in a PNG file, atomically.

    The grid is scaled by the images' minimum and maximum (see :func:`tile_images`), which
    the title states.
    """
    images = np.asarray(images, dtype=np.float64)
    figure = Figure(figsize=(6, 6), layout="constrained")
    axis = figure.subplots()
    grid = tile_images(images)
    low, high = np.nanmin(images), np.nanmax(images)
    if images.shape[1] == 1:
        axis.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axis.imshow(grid, interpolation="nearest")
    axis.set_axis_off()
    axis.set_title(f"{title} (values {low:.3g} to {high:.3g})")
    save_png(figure, path)
    logger.info("wrote %s", path)
    return path
