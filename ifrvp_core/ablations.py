"""Old home of the recipe ablations (notebook 06); they live in `ifrvp_core.workbook.ablations` now.

Kept so that notebooks written against `import ifrvp_core.ablations as ab` keep working.
"""
from ifrvp_core.workbook.ablations import (
    ABLATION_VARIANTS,
    DEFAULT_VARIANT,
    RealColumn,
    VariantRun,
    ablation_data,
    ablation_rows,
    base_config,
    column_payload,
    comparison_figure,
    evaluate_variants,
    evaluated_test_set,
    gains_over_prior_only,
    largest_gain_sample,
    real_ablation_data,
    real_base_config,
    run_real_column,
    step_curves_figure,
    step_functions,
    train_variants,
    write_ablation_results,
)

# the name `evaluated_test_set` had before (old notebooks call `ab.test_dataset(results, runs, data_root)`)
test_dataset = evaluated_test_set

__all__ = [
    "ABLATION_VARIANTS", "DEFAULT_VARIANT", "RealColumn", "VariantRun", "ablation_data", "ablation_rows", "base_config",
    "column_payload", "comparison_figure", "evaluate_variants", "evaluated_test_set", "gains_over_prior_only", "largest_gain_sample",
    "real_ablation_data", "real_base_config", "run_real_column", "step_curves_figure", "step_functions", "test_dataset",
    "train_variants", "write_ablation_results",
]
