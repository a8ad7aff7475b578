"""The workbook: the numbered notebooks' code, and the runner that renders them into reports.

One module per notebook holds what that notebook computes and draws, so the notebooks stay short
(tests/test_notebooks.py runs them all through papermill with the `tiny` profile):

    profiles            PROFILES, profile_settings, the work folder and the files notebooks hand on
    recipes             which recipe 03 trains and which data 05 scores (profile < config file < parameters)
    display             HTML tables, the run's parameters, inlined animations
    verdicts            whether the model beats a baseline, in the reports' words
    samples             one dataset sample batched, and through a model
    data_views          01 data preparation
    architecture_views  02 architecture exploration (and the time sweep 04 shows again)
    training_views      03 training: the live curves, the run's results
    flow_views          04 flows and warps: rollout animations, the explorer
    evaluation_views    05 evaluation: results.json, headline.json, tables and figures
    ablations           06 ablations of the training recipe (imported on its own: it trains)
    runner              `python -m ifrvp_core.workbook`: papermill, HTML reports, index.html

The notebooks import this package (`import ifrvp_core.workbook as nh`): every public name of
the modules above except `ablations` is re-exported here.
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
    verified_data_root,
)
from ifrvp_core.workbook.display import animation_html, html_table, show_settings, show_table, step_column
from ifrvp_core.workbook.evaluation_views import (
    best_worst_figure,
    evaluation_headline,
    metric_curves_figure,
    results_rows,
    run_evaluation,
)
from ifrvp_core.workbook.flow_views import (
    EXPLORER_LAYERS,
    explorer_figure,
    flow_explorer,
    level_grid_figure,
    rollout_animation,
)
from ifrvp_core.workbook.profiles import (
    PROFILES,
    REPO,
    dataset_info,
    default_work_dir,
    profile_settings,
    read_json,
    resolve_work_dir,
    set_aside_old_run,
    synthetic_data_root,
    trained_checkpoint,
    write_json,
)
from ifrvp_core.workbook.recipes import (
    CONFIGS_DIR,
    DEFAULT_RUN_NAME,
    TRAINING_KEYS,
    config_path,
    dataset_config,
    evaluation_data,
    evaluation_protocol,
    missing_eval_root,
    read_recipe,
    recipe_dataset,
    trained_protocol,
    training_recipe,
    training_values,
)
from ifrvp_core.workbook.runner import (
    FIGURES_VARY_NOTE,
    KERNEL_NAME,
    NOTEBOOKS_DIR,
    PATH_PARAMETERS,
    RUNNER_OPTIONS,
    SEPARATE_NOTEBOOKS,
    NotebookRun,
    WorkbookError,
    WorkbookResult,
    check_kernel,
    check_parameters,
    command_with,
    cpu_name,
    encrypted_kernel_manager_class,
    list_notebooks,
    main,
    missing_parameter,
    notebook_parameters,
    notebooks_with_outputs,
    render_html,
    run_notebook,
    run_workbook,
    select_notebooks,
    write_index,
)
from ifrvp_core.workbook.samples import as_batch, forward_sample
from ifrvp_core.workbook.training_views import (
    LiveCurves,
    checkpoint_listing,
    training_curves_figure,
    validation_baseline_rows,
)
from ifrvp_core.workbook.verdicts import BASELINE_LABELS, beats_baseline, beats_on_every_metric, verdict_cell, verdict_verb

__all__ = [
    # profiles and the files the notebooks hand on
    "PROFILES", "REPO", "dataset_info", "default_work_dir", "profile_settings", "read_json", "resolve_work_dir",
    "set_aside_old_run", "synthetic_data_root", "trained_checkpoint", "write_json",
    # display and verdicts
    "animation_html", "html_table", "show_settings", "show_table", "step_column",
    "BASELINE_LABELS", "beats_baseline", "beats_on_every_metric", "verdict_cell", "verdict_verb",
    # recipes: what 03 trains, what 05 scores
    "CONFIGS_DIR", "DEFAULT_RUN_NAME", "TRAINING_KEYS", "config_path", "dataset_config", "evaluation_data",
    "evaluation_protocol", "missing_eval_root", "read_recipe", "recipe_dataset", "trained_protocol", "training_recipe",
    "training_values",
    # the notebooks' views
    "as_batch", "forward_sample",
    "frame_statistics", "motion_histogram_figure", "prepare_dataset", "sample_grid_figure", "split_sizes",
    "teacher_flow_magnitudes", "verified_data_root",
    "effective_receptive_field", "pyramid_shapes", "receptive_field_figure", "synthetic_truth_at", "time_sweep_figure",
    "variant_table",
    "LiveCurves", "checkpoint_listing", "training_curves_figure", "validation_baseline_rows",
    "EXPLORER_LAYERS", "explorer_figure", "flow_explorer", "level_grid_figure", "rollout_animation",
    "best_worst_figure", "evaluation_headline", "metric_curves_figure", "results_rows", "run_evaluation",
    # the runner
    "FIGURES_VARY_NOTE", "KERNEL_NAME", "NOTEBOOKS_DIR", "PATH_PARAMETERS", "RUNNER_OPTIONS", "SEPARATE_NOTEBOOKS",
    "NotebookRun", "WorkbookError", "WorkbookResult", "check_kernel", "check_parameters", "command_with", "cpu_name",
    "encrypted_kernel_manager_class", "list_notebooks", "main", "missing_parameter", "notebook_parameters", "notebooks_with_outputs", "render_html", "run_notebook", "run_workbook", "select_notebooks",
    "write_index",
]
