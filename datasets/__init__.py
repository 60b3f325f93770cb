"""Dataset registry: `get_dataset(name, data_root)`, `list_datasets()`, `resolve_data_root()`.

A dataset class registers itself with `@register_dataset("name")`; CamVid (the SegNet authors' copy)
is the one the paper's CamVid experiments use.
"""
from datasets.registry import (DEFAULT_DATA_ROOT, get_dataset, list_datasets, register_dataset,
                               resolve_data_root)
from datasets import camvid as _camvid  # noqa: F401  (registers "camvid")

__all__ = ["DEFAULT_DATA_ROOT", "get_dataset", "list_datasets", "register_dataset", "resolve_data_root"]
