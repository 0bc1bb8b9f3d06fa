"""Data: bundled and generated datasets, site files, partitioners, corruption."""

from fedcurate.data.arrays import ArrayDataset, make_dataset
from fedcurate.data.federation import (
    DatasetSpec,
    Federation,
    OwnerData,
    build_federation,
    owner_name,
)
from fedcurate.data.sites import SiteDataError, load_site_file, write_site_file

__all__ = [
    "ArrayDataset",
    "DatasetSpec",
    "Federation",
    "OwnerData",
    "SiteDataError",
    "build_federation",
    "load_site_file",
    "make_dataset",
    "owner_name",
    "write_site_file",
]
