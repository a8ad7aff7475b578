"""Old home of what the numbered notebooks call; it lives in `ifrvp_core.workbook` now.

Kept so that notebooks written against `import ifrvp_core.notebook_helpers as nh` keep working:
every name it held (`__all__`) is taken from `ifrvp_core.workbook`, which re-exports it from the
module that holds it today (profiles, display, data_views, architecture_views, training_views,
flow_views, evaluation_views).
"""
from ifrvp_core import workbook

__all__ = [
    "LiveCurves", "PROFILES", "validation_baseline_rows", "animation_html", "as_batch", "best_worst_figure", "checkpoint_listing",
    "effective_receptive_field", "evaluation_headline", "run_evaluation", "flow_explorer", "forward_sample", "frame_statistics",
    "html_table", "level_grid_figure", "metric_curves_figure", "motion_histogram_figure", "prepare_dataset", "profile_settings",
    "pyramid_shapes", "read_json", "receptive_field_figure", "results_rows", "rollout_animation", "sample_grid_figure",
    "show_settings", "show_table", "split_sizes", "synthetic_truth_at", "teacher_flow_magnitudes", "time_sweep_figure",
    "training_curves_figure", "variant_table", "write_json",
    "dataset_info", "default_work_dir", "resolve_work_dir", "set_aside_old_run", "trained_checkpoint",
]

# every old name is the package's own object (tests/test_notebooks.py checks identity)
globals().update({name: getattr(workbook, name) for name in __all__})
