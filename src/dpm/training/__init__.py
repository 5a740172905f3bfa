"""Blocks-style training: step rules, the main loop, extensions and checkpoints."""

from dpm.training.algorithm import GradientDescent
from dpm.training.checkpoint import load_checkpoint, restore_step_rule, save_checkpoint
from dpm.training.extensions import (
    Checkpoint,
    FinishAfter,
    Printing,
    ProgressBar,
    SimpleExtension,
    Timing,
)
from dpm.training.log import TrainingLog
from dpm.training.main_loop import MainLoop
from dpm.training.step_rules import Adam, RemoveNotFinite, RMSProp, build_step_rule

__all__ = [
    "Adam", "Checkpoint", "FinishAfter", "GradientDescent", "MainLoop", "Printing", "ProgressBar",
    "RMSProp", "RemoveNotFinite", "SimpleExtension", "Timing", "TrainingLog", "build_step_rule",
    "load_checkpoint", "restore_step_rule", "save_checkpoint",
]
