"""The training algorithm: one compiled function that applies a step rule to a cost."""

import logging

import numpy as np
import pytensor

from dpm import backend

logger = logging.getLogger(__name__)


class GradientDescent:
    """Minimize a symbolic cost over parameters with a step rule.

    Parameters
    ----------
    cost : scalar tensor
    parameters : list of shared variables
    step_rule : RMSProp, Adam or RemoveNotFinite
    inputs : list of symbolic inputs, in the order ``prepare_inputs`` returns them
    outputs : dict name -> scalar tensor
        Monitored quantities returned for every batch (averaged per epoch by the main loop).
    prepare_inputs : callable
        Maps a batch (dict of arrays) to the list of input values, for example adding the
        seeded time steps and noise of the diffusion bound.
    """

    def __init__(self, cost, parameters, step_rule, inputs, outputs, prepare_inputs):
        self.parameters = list(parameters)
        self.step_rule = step_rule
        self.prepare_inputs = prepare_inputs
        gradients = pytensor.grad(cost, self.parameters)
        updates = step_rule.updates(self.parameters, gradients)
        self.output_names = ["cost", *outputs]
        symbolic = [cost, *outputs.values()]
        finite = getattr(step_rule, "finite", None)
        if finite is not None:
            self.output_names.append("finite")
            symbolic.append(finite)
        logger.info("compiling the training function (%d parameters)", len(self.parameters))
        self.function = backend.compile_function(inputs, symbolic, updates=updates)

    def process_batch(self, batch):
        """Take one step on ``batch``; return the monitored outputs as floats."""
        values = self.function(*self.prepare_inputs(batch))
        return {name: float(np.asarray(value)) for name, value in zip(self.output_names, values)}
