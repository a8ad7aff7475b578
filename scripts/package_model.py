"""Turn a training run's checkpoint into a packaged model: `ifrvp_core/weights/<name>.pt`.

    python scripts/package_model.py runs/real/latest.pt --name ifrvp-s-real --command "ifrvp train ..."

Keeps what `load_model` needs (variant, context frames, options) and the weights in float16 (half
the size; they are cast back to float32 when loaded), drops the optimiser and RNG state, and
records where the weights came from: the training command, the run's `config.json` and the
checkpoint's iteration. The file is written atomically.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import torch

from ifrvp_core.atomic import write_bytes_atomic
from ifrvp_core.checkpoint import PACKAGED_WEIGHTS_DIR, load_file, load_model, model_checkpoint


def packaged_checkpoint(source: Path, command: str) -> dict:
    """The packaged form of checkpoint `source`: float16 weights plus where they came from."""
    model = load_model(source)
    checkpoint = model_checkpoint(model)
    checkpoint["model"] = {key: value.half() if value.is_floating_point() else value for key, value in checkpoint["model"].items()}
    original = load_file(source)
    config_file = source.parent / "config.json"
    checkpoint["provenance"] = {
        "command": command,
        "iteration": int(original.get("iteration", 0)) if isinstance(original, dict) else 0,
        "config": json.loads(config_file.read_text()) if config_file.is_file() else None,
        "storage": "float16 weights (cast to float32 when loaded)",
    }
    return checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a training checkpoint (latest.pt or best.pt)")
    parser.add_argument("--name", default="ifrvp-s-real", help="packaged model name (default ifrvp-s-real)")
    parser.add_argument("--command", required=True, help="the exact training command, recorded in the file")
    parser.add_argument("--output_dir", type=Path, default=PACKAGED_WEIGHTS_DIR, help="default: ifrvp_core/weights/")
    args = parser.parse_args(argv)
    buffer = io.BytesIO()
    torch.save(packaged_checkpoint(args.checkpoint, args.command), buffer)
    path = write_bytes_atomic(args.output_dir / f"{args.name}.pt", buffer.getvalue())
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
