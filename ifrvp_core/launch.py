"""Start training from a notebook cell: `ifrvp_core.train.launch`, importable here as before.

    from ifrvp_core.launch import launch_training, read_log
"""
from ifrvp_core.train.launch import LaunchResult, TrainingFailed, build_command, launch_training, output_lines, read_log, worker_environment

__all__ = ["LaunchResult", "TrainingFailed", "build_command", "launch_training", "output_lines", "read_log", "worker_environment"]
