"""The tiny training run several test modules share: command-line flags for a few IFRNet_T steps on 48x64 crops."""

SEED = 3


def tiny_args(data_root, log_path, run_name, **extra) -> list[str]:
    """`--key=value` flags for `ifrvp_core.train` on the `tiny_data` set; `extra` overrides or adds flags."""
    values = dict(
        model_name="IFRNet_T", dataset="synthetic", data_root=data_root, crop_size=32, batch_size=2, num_workers=0,
        log_path=log_path, run_name=run_name, log_interval=1, val_samples=2, val_batch_size=2, epochs=50, seed=SEED,
    )
    values.update(extra)
    return [f"--{key}={value}" for key, value in values.items()]
