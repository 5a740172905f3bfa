"""Plotting extensions: logged quantities, parameter histograms and sample images, as PNG files.

Every figure is drawn on a standalone :class:`matplotlib.figure.Figure`, without pyplot's
global state, and written under a temporary name then renamed, so a reader never sees a
partial file. Default triggers of each extension: every epoch and after training, with
the run after training skipped when it follows the last epoch's run.
"""

import logging
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dpm.atomic import atomic_path
from dpm.training.extensions import SimpleExtension

logger = logging.getLogger(__name__)

_DEFAULT_TRIGGERS = {"every_n_epochs": 1, "after_training": True}


class _PlotExtension(SimpleExtension):
    """A plotting extension that skips a run when no batch was done since its last one.

    Training that ends with an epoch triggers both ``after_epoch`` and ``after_training``
    at the same batch, and the second figure would equal the first.
    """

    def __init__(self, **triggers):
        super().__init__(**{**_DEFAULT_TRIGGERS, **triggers})
        self.plotted_at = None

    def dispatch(self, event, main_loop):
        if self.triggered(event, main_loop.log.status):
            iterations_done = main_loop.log.status["iterations_done"]
            if iterations_done != self.plotted_at:
                self.do(event, main_loop)
                self.plotted_at = iterations_done


def save_png(figure, path):
    """Write ``figure`` to ``path`` as PNG, atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def _grid_shape(count, max_columns):
    columns = min(count, max_columns)
    return math.ceil(count / columns), columns


class PlotMonitors(_PlotExtension):
    """Plot chosen quantities of the epoch records against the epoch, one panel each.

    Partial records, of epochs cut short by a stop, are left out.

    Parameters
    ----------
    path : path-like
        The PNG file, replaced at each run of the extension.
    keys : sequence of str
        Record keys, for example ``('K', 'test_K', 'learning_rate')``.
    **triggers
        See :class:`SimpleExtension`.
    """

    def __init__(self, path, keys=("K",), **triggers):
        super().__init__(**triggers)
        if isinstance(keys, str) or not keys:
            raise ValueError(f"keys must be a non-empty sequence of record keys, got {keys!r}")
        self.path = Path(path)
        self.keys = tuple(keys)

    def do(self, event, main_loop):
        records = [record for record in main_loop.log.records if not record.get("partial")]
        figure = Figure(figsize=(6, 2.2 * len(self.keys)), layout="constrained")
        axes = figure.subplots(len(self.keys), 1, sharex=True, squeeze=False)[:, 0]
        for axis, key in zip(axes, self.keys):
            points = [(record["epoch"], record[key]) for record in records
                      if isinstance(record.get(key), (int, float))]
            if points:
                epochs, values = zip(*points)
                axis.plot(epochs, values, marker="." if len(points) < 50 else None)
            else:
                axis.text(0.5, 0.5, "no values yet", ha="center", va="center",
                          transform=axis.transAxes)
            axis.set_ylabel(key)
        axes[-1].set_xlabel("epoch")
        save_png(figure, self.path)
        logger.debug("monitors plotted to %s", self.path)


class PlotParameters(_PlotExtension):
    """Draw a histogram of every parameter of a model, one PNG per brick that has parameters.

    The files are ``<folder>/parameters-<brick path>.png``, with ``-`` in place of the
    ``/`` of the brick path, and each panel is titled with the parameter's full path. Values
    that are not finite are left out of the histogram and counted in the title.

    Parameters
    ----------
    model : Brick
    folder : path-like
    bins : int
    **triggers
        See :class:`SimpleExtension`.
    """

    def __init__(self, model, folder, bins=50, **triggers):
        super().__init__(**triggers)
        self.model = model
        self.folder = Path(folder)
        self.bins = int(bins)

    def paths(self):
        """Return ``{brick path: PNG path}`` for the bricks that have parameters."""
        return {brick.path: self.folder / f"parameters-{brick.path.replace('/', '-')}.png"
                for brick in self.model.iter_bricks() if brick.parameters}

    def do(self, event, main_loop):
        paths = self.paths()
        for brick in self.model.iter_bricks():
            if brick.parameters:
                self._plot_brick(brick, paths[brick.path], main_loop.log.status["iterations_done"])

    def _plot_brick(self, brick, path, iterations_done):
        parameters = brick.parameters
        rows, columns = _grid_shape(len(parameters), 3)
        figure = Figure(figsize=(3.6 * columns, 2.8 * rows), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for axis, parameter in zip(axes, parameters):
            values = np.asarray(parameter.get_value()).ravel()
            finite = values[np.isfinite(values)]
            title = f"{parameter.name} {tuple(parameter.type.shape)}"
            if len(finite) < len(values):
                title += f"\n{len(values) - len(finite)} not finite"
            if len(finite):
                axis.hist(finite, bins=self.bins)
            axis.set_title(title, fontsize=8)
        for axis in axes[len(parameters):]:
            axis.set_axis_off()
        figure.suptitle(f"{brick.path} after {iterations_done} batches", fontsize=9)
        save_png(figure, path)


def _check_image_name(name):
    if (not isinstance(name, str) or not name or name.startswith(".") or "/" in name
            or os.sep in name):
        raise ValueError(
            f"image name {name!r} cannot be a file name; use a non-empty name without path "
            "separators that does not start with '.'"
        )


def tile_images(images):
    """Tile (N, C, H, W) images into one (rows, columns, C) array, one pixel of padding apart.

    Values are scaled to [0, 1] by the array's minimum and maximum (0.5 if it is constant).
    """
    images = np.asarray(images, dtype=np.float64)
    count, channels, height, width = images.shape
    low, high = np.nanmin(images), np.nanmax(images)
    scaled = (images - low) / (high - low) if high > low else np.full(images.shape, 0.5)
    rows, columns = _grid_shape(count, math.ceil(math.sqrt(count)))
    grid = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels))
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + 1), column * (width + 1)
        grid[top:top + height, left:left + width] = scaled[index].transpose(1, 2, 0)
    return grid


class PlotSamples(_PlotExtension):
    """Write the images that a callable returns, one PNG per name.

    ``make_images()`` is called without arguments and returns a dict of name to array. An
    array of shape (N, C, H, W) with C = 1 (grey) or 3 (RGB) is drawn as a grid of N images,
    scaled together to the full grey or colour range. An array of shape (N, 2) is drawn as a
    scatter plot, and any other (N, D) array as an image with one row per example and one
    column per dimension. A sampler usually returns samples, inpainting and denoising
    results under names such as ``'samples'``, ``'inpainting'`` and ``'denoising'``, and
    seeds itself so that successive figures are comparable.

    Parameters
    ----------
    make_images : callable
    folder : path-like
        The files are ``<folder>/<name>.png``, replaced at each run of the extension, or
        ``<folder>/<name>-<batches done, 7 digits>.png`` with ``history=True``.
    history : bool
    **triggers
        See :class:`SimpleExtension`.
    """

    def __init__(self, make_images, folder, history=False, **triggers):
        super().__init__(**triggers)
        if not callable(make_images):
            raise TypeError(f"make_images must be callable, got {type(make_images).__name__}")
        self.make_images = make_images
        self.folder = Path(folder)
        self.history = history

    def do(self, event, main_loop):
        images = self.make_images()
        if not isinstance(images, dict):
            raise TypeError(
                f"make_images must return a dict of name to array, got {type(images).__name__}"
            )
        iterations_done = main_loop.log.status["iterations_done"]
        for name, array in images.items():
            _check_image_name(name)
            figure = self._draw(name, np.asarray(array))
            stem = f"{name}-{iterations_done:07d}" if self.history else name
            save_png(figure, self.folder / f"{stem}.png")

    def _draw(self, name, array):
        figure = Figure(figsize=(6, 6), layout="constrained")
        axis = figure.subplots()
        if array.ndim == 4 and array.shape[1] in (1, 3) and len(array):
            grid = tile_images(array)
            if grid.shape[2] == 1:
                axis.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                axis.imshow(grid, interpolation="nearest")
            axis.set_axis_off()
        elif array.ndim == 2 and array.shape[1] == 2 and len(array):
            axis.scatter(array[:, 0], array[:, 1], s=2, linewidths=0)
            axis.set_aspect("equal")
        elif array.ndim == 2 and len(array):
            axis.imshow(array, cmap="gray_r", aspect="auto", interpolation="nearest")
            axis.set_xlabel("dimension")
            axis.set_ylabel("example")
        else:
            raise ValueError(
                f"image array {name!r} has shape {array.shape}; return (N, C, H, W) with C = 1 "
                "or 3, or (N, D), with N at least 1"
            )
        axis.set_title(name)
        return figure
