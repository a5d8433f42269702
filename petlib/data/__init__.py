"""The data layer: the Oxford-IIIT Pet release on disk, and the tensors a network trains on.

- :mod:`~petlib.data.release` -- the official layout, its split files and readers;
- :mod:`~petlib.data.download` -- fetching the release (MD5-checked, atomic);
- :mod:`~petlib.data.cache` -- decoding each image once into uint8 arrays;
- :mod:`~petlib.data.dataset` -- :class:`OxfordPetSegmentation` and :func:`load_dataset`, the one
  way petlib builds a DataLoader;
- :mod:`~petlib.data.transforms` -- :class:`Augment`, augmentation on the batch on the device;
- :mod:`~petlib.data.survey` -- counts and statistics of the files (notebook 01).

Imports only :mod:`petlib.distributed` and :mod:`petlib._io` of petlib.
"""
from petlib.data.dataset import (
    DEFAULT_ROOT,
    MIRRORS,
    MODES,
    RESOURCES,
    SAMPLE_ROOT,
    DatasetNotFoundError,
    DownloadError,
    OxfordPetSegmentation,
    SplitEntry,
    dataset_present,
    download,
    evenly_spaced,
    image_file,
    is_sample,
    load_dataset,
    read_image,
    read_image_and_size,
    read_split,
    read_trimap,
    trimap_file,
    trimap_to_mask,
)
from petlib.data.survey import (
    ImageInfo,
    count_by,
    count_table,
    foreground_fractions,
    odd_images,
    read_example,
    read_splits,
    survey_images,
)
from petlib.data.transforms import Augment

__all__ = [
    "DEFAULT_ROOT", "SAMPLE_ROOT", "MODES", "MIRRORS", "RESOURCES", "DatasetNotFoundError", "DownloadError",
    "SplitEntry", "OxfordPetSegmentation", "image_file", "trimap_file", "dataset_present", "is_sample", "read_split",
    "read_image", "read_image_and_size", "read_trimap", "trimap_to_mask", "evenly_spaced", "load_dataset", "download",
    "Augment",
    # the survey of notebook 01 (survey.py)
    "read_splits", "count_by", "count_table", "read_example", "ImageInfo", "survey_images", "odd_images",
    "foreground_fractions",
]
