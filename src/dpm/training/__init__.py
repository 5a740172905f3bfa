"""Blocks-style training: step rules, the main loop, extensions, checkpoints, resume and run folders."""

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
from dpm.training.monitors import LogLikelihood
from dpm.training.plots import PlotMonitors, PlotParameters, PlotSamples
from dpm.training.resume import resume
from dpm.training.run_dir import create_run_dir, read_config, write_config
from dpm.training.schedules import ExponentialDecay, ReferenceDecay
from dpm.training.stats import StatsWriter, read_stats
from dpm.training.step_rules import Adam, RemoveNotFinite, RMSProp, build_step_rule
from dpm.training.training_run import TrainingRun, run_training

__all__ = [
    "Adam", "Checkpoint", "ExponentialDecay", "FinishAfter", "GradientDescent", "LogLikelihood",
    "MainLoop", "PlotMonitors", "PlotParameters", "PlotSamples", "Printing", "ProgressBar",
    "RMSProp", "ReferenceDecay", "RemoveNotFinite", "SimpleExtension", "StatsWriter", "Timing",
    "TrainingLog", "TrainingRun", "build_step_rule", "create_run_dir", "load_checkpoint",
    "read_config", "read_stats", "restore_step_rule", "resume", "run_training", "save_checkpoint",
    "write_config",
]
