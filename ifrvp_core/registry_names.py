"""The names the registries hold, importable without torch.

The registries themselves (`ifrvp_core.models`, `ifrvp_core.data`, `ifrvp_core.protocols`) import
torch, which takes seconds; `--help` texts and the first checks of a command line list these
names instead. `tests/test_train_cli.py` checks that they equal the registries.
"""
MODEL_NAMES = ("IFRNet", "IFRNet_L", "IFRNet_S", "IFRNet_T", "IFRNet_ELAN")
DATASET_NAMES = ("synthetic", "vimeo90k", "gopro", "cityscapes", "kitti", "davis17", "ucf101", "frames", "shards")
PROTOCOL_NAMES = ("cityscapes", "kitti", "davis17", "vimeo90k", "vimeo90k_septuplet", "gopro", "frames", "frames_heldout",
                  "synthetic")
