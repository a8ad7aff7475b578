"""Old home of what the numbered notebooks call; it lives in `ifrvp_core.workbook` now.

Kept so that notebooks written against `import ifrvp_core.notebook_helpers as nh` keep working:
every name it held is re-exported from the module that holds it today (`ifrvp_core.workbook`
lists them: profiles, display, data_views, architecture_views, training_views, flow_views,
evaluation_views).
"""
from ifrvp_core.workbook.architecture_views import (
    effective_receptive_field,
    pyramid_shapes,
    receptive_field_figure,
    synthetic_truth_at,
    time_sweep_figure,
    variant_table,
)
from ifrvp_core.workbook.data_views import (
    frame_statistics,
    motion_histogram_figure,
    prepare_dataset,
    sample_grid_figure,
    split_sizes,
    teacher_flow_magnitudes,
)
from ifrvp_core.workbook.display import animation_html, html_table, show_settings, show_table
from ifrvp_core.workbook.evaluation_views import (
    best_worst_figure,
    evaluation_headline,
    metric_curves_figure,
    results_rows,
    run_evaluation,
)
from ifrvp_core.workbook.flow_views import flow_explorer, level_grid_figure, rollout_animation
from ifrvp_core.workbook.profiles import (
    PROFILES,
    dataset_info,
    default_work_dir,
    profile_settings,
    read_json,
    resolve_work_dir,
    set_aside_old_run,
    trained_checkpoint,
    write_json,
)
from ifrvp_core.workbook.samples import as_batch, forward_sample
from ifrvp_core.workbook.training_views import (
    LiveCurves,
    checkpoint_listing,
    training_curves_figure,
    validation_baseline_rows,
)

__all__ = [
    "LiveCurves", "PROFILES", "validation_baseline_rows", "animation_html", "as_batch", "best_worst_figure", "checkpoint_listing",
    "effective_receptive_field", "evaluation_headline", "run_evaluation", "flow_explorer", "forward_sample", "frame_statistics",
    "html_table", "level_grid_figure", "metric_curves_figure", "motion_histogram_figure", "prepare_dataset", "profile_settings",
    "pyramid_shapes", "read_json", "receptive_field_figure", "results_rows", "rollout_animation", "sample_grid_figure",
    "show_settings", "show_table", "split_sizes", "synthetic_truth_at", "teacher_flow_magnitudes", "time_sweep_figure",
    "training_curves_figure", "variant_table", "write_json",
    "dataset_info", "default_work_dir", "resolve_work_dir", "set_aside_old_run", "trained_checkpoint",
]
