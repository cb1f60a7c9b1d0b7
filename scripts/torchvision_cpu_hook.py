"""Installed into the venv by scripts/setup.sh (CPU stack only), activated by a .pth file.

PyPI's torchvision wheels are CUDA builds: beside torch's +cpu build their compiled ops fail to
load and `import torchvision` dies with "operator torchvision::nms does not exist". torchvision
only needs the schemas of the two ops it declares at import time. This finder waits for the
first `import torchvision`; then, and only if torchvision's compiled library cannot be loaded,
it defines those two schemas so that the import and the image transforms work. The
torchvision.ops kernels stay unavailable; nothing in edit-rl uses them.
"""
import importlib.abc
import importlib.util
import sys


def _register_schemas(locations) -> None:
    import glob
    import os

    import torch

    for location in locations:
        for path in glob.glob(os.path.join(location, "_C*.so")):
            try:
                torch.ops.load_library(path)
                return  # a working build: nothing to do
            except (OSError, RuntimeError):
                pass
    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        sys.modules[__name__]._library = lib  # keep the definitions alive
    except RuntimeError:
        pass  # already defined


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torchvision")
        if spec is not None and spec.submodule_search_locations:
            try:
                _register_schemas(list(spec.submodule_search_locations))
            except Exception as exc:  # never break an import over this hook
                print(f"[edit-rl torchvision hook] {exc!r}", file=sys.stderr)
        return spec


if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionFinder())
