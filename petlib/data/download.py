"""Fetching Oxford-IIIT Pet: the release's archives, their mirrors and MD5s, and :func:`download`.

``python -m petlib.data download --data_path <root>`` (:func:`petlib.data.main`) calls
:func:`download`; :mod:`petlib.data` re-exports everything here.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_ROOT", "MIRRORS", "RESOURCES", "DownloadError", "download"]

# Where download puts the dataset and every command looks for it, relative to the working folder.
DEFAULT_ROOT = Path("dataset/oxford-iiit-pet")
# Official host first; the mirror serves the same files (same MD5) when the first is down.
MIRRORS = (
    "https://www.robots.ox.ac.uk/~vgg/data/pets/data/",
    "https://thor.robots.ox.ac.uk/datasets/pets/",
)
# (archive name, MD5) of the official release.
RESOURCES = (
    ("images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
)


class DownloadError(RuntimeError):
    """No mirror served an archive with the expected MD5."""


def _fetch(filename: str, md5: str, root: Path, mirrors: Sequence[str]) -> None:
    """Download ``filename`` into ``root`` from the first mirror that serves it with ``md5``."""
    # torchvision's helpers: urllib with a progress bar, and MD5 checks.
    from torchvision.datasets.utils import calculate_md5, check_integrity, download_url

    archive = root / filename
    part = root / f"{filename}.part"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        # download_url skips an existing file when given no MD5: start from nothing.
        part.unlink(missing_ok=True)
        print(f"Downloading {url}")
        try:
            # Into "<file>.part", renamed only once verified: an interrupted download never
            # passes as a complete archive.
            download_url(url, str(root), filename=part.name)
        except (OSError, RuntimeError, ValueError) as err:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {err}")
            continue
        if not check_integrity(part, md5):
            failures.append(f"{url}: MD5 {calculate_md5(part)} does not match the expected {md5}")
            part.unlink(missing_ok=True)
            continue
        os.replace(part, archive)
        return
    raise DownloadError(f"could not download {filename}; tried:\n  " + "\n  ".join(failures))


def download(
    root: str | Path = DEFAULT_ROOT,
    mirrors: Sequence[str] = MIRRORS,
    resources: Sequence[tuple[str, str]] = RESOURCES,
    remove_archives: bool = False,
) -> Path:
    """Download and extract the Oxford-IIIT Pet release into ``root``.

    Fetches ``images.tar.gz`` (~750 MB) and ``annotations.tar.gz`` (~19 MB), trying each
    mirror in turn, verifies their MD5, and extracts them to ``<root>/images`` and
    ``<root>/annotations``. Archives already present and verified are not fetched again,
    and archives already extracted are not extracted again, so an interrupted run can be
    restarted.

    Args:
        root: destination folder (created).
        mirrors: base URLs, tried in order.
        resources: ``(archive name, MD5)`` pairs.
        remove_archives: delete each archive after extracting it.

    Returns:
        The absolute ``root``.

    Raises:
        DownloadError: no mirror served a file with the right MD5; the message lists every URL tried.
    """
    from torchvision.datasets.utils import check_integrity, extract_archive

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for filename, md5 in resources:
        archive = root / filename
        # A marker written after extraction: a half-extracted folder is not mistaken for done.
        marker = root / f".{filename}.extracted"
        if marker.is_file() and marker.read_text().strip() == md5:
            print(f"{filename}: already extracted in {root}")
            continue
        if check_integrity(archive, md5):
            print(f"{filename}: already downloaded and verified")
        else:
            _fetch(filename, md5, root, mirrors)
        print(f"Extracting {archive}")
        extract_archive(archive, root)
        marker.write_text(md5 + "\n")
        if remove_archives:
            archive.unlink()
    return root
