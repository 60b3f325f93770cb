"""Dataset registry: `get_dataset(name, data_root)`, `list_datasets()`, `resolve_data_root()`.

A dataset class registers itself with `@register_dataset("name")`; CamVid (the SegNet authors' copy)
is the one the paper's CamVid experiments use; voc2012 (torchvision's VOCSegmentation layout) the
encoder-freezing study's; sunrgbd (the official release, converted once by `bench data prepare`) the
indoor half of the controlled benchmark (Tables 4 and 5).
"""
from bench.datasets.registry import (DEFAULT_DATA_ROOT, get_dataset, list_datasets, register_dataset,
                               resolve_data_root)
from bench.datasets import camvid as _camvid  # noqa: F401  (registers "camvid")
from bench.datasets import voc as _voc  # noqa: F401  (registers "voc2012")
from bench.datasets import sunrgbd as _sunrgbd  # noqa: F401  (registers "sunrgbd")

__all__ = ["DEFAULT_DATA_ROOT", "get_dataset", "list_datasets", "register_dataset", "resolve_data_root"]
