"""The install must give a working torchvision (a CPU-only torch wheel would break its C++ ops)."""
import torch
import torchvision


def test_torchvision_imports_and_runs_its_ops():
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert torchvision.__version__.split("+")[0] >= "0.29"


def test_package_exports_public_api():
    import ifrvp_core

    for name in ("build_model", "list_models", "load_checkpoint", "load_model", "backward_warp"):
        assert callable(getattr(ifrvp_core, name))
