"""Where data files live, and getting a verified copy of one.

The data directory is taken from, in order: the ``data_dir`` argument, the environment variable
``MOLCHANNEL_DATA_DIR``, and ``~/.cache/molchannel/data`` (``$XDG_CACHE_HOME`` is honoured).
Every file is checked against the sha256 of the registry before use. Hashing a large file on
every load would be slow, so a successful check is remembered in a small JSON file in the cache
directory (``MOLCHANNEL_CACHE_DIR``, default ``~/.cache/molchannel``), keyed on the file's absolute
path, size and modification time: touching or rewriting the file forces a new check.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Protocol

from molchannel.atomic import write_text_atomic

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MOLCHANNEL_DATA_DIR"
CACHE_DIR_ENV = "MOLCHANNEL_CACHE_DIR"
_VERIFIED_FILE = "verified_sha256.json"
_CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 60


class DataNotFoundError(FileNotFoundError):
    """A data file is missing and could not be downloaded."""


class ChecksumMismatchError(ValueError):
    """A data file's bytes are not the ones the registry expects."""


class RemoteFile(Protocol):
    """What :func:`fetch_file` needs to know (a ``DatasetSpec`` or ``DataFile``)."""

    @property
    def file(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def url(self) -> str | None: ...


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "molchannel"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$MOLCHANNEL_DATA_DIR``, else ``~/.cache/molchannel/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return _user_cache_root() / "data"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: the argument, else ``$MOLCHANNEL_CACHE_DIR``, else ``~/.cache/molchannel``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get(CACHE_DIR_ENV)
    return Path(from_env).expanduser() if from_env else _user_cache_root()


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---- remembered verifications -------------------------------------------------------------
_verified_this_process: dict[str, str] = {}


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _load_verified(cache_dir: Path) -> dict[str, str]:
    try:
        with open(cache_dir / _VERIFIED_FILE, encoding="utf-8") as fh:
            data = json.load(fh)
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember_verified(cache_dir: Path, key: str, sha256: str) -> None:
    """Record a verified hash; failures (read-only home, races) only cost a re-hash later."""
    _verified_this_process[key] = sha256
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        known = _load_verified(cache_dir)
        known[key] = sha256
        write_text_atomic(cache_dir / _VERIFIED_FILE, json.dumps(known, indent=0, sort_keys=True))
    except OSError as exc:
        logger.debug("could not record verified checksum in %s: %s", cache_dir, exc)


def verify_file(path: Path, expected_sha256: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path`` has sha256 ``expected_sha256``.

    A previous successful check of the same (path, size, mtime) is trusted without re-hashing.
    """
    key = _stat_key(path)
    cache = resolve_cache_dir(cache_dir)
    if _verified_this_process.get(key) == expected_sha256:
        return
    if _load_verified(cache).get(key) == expected_sha256:
        _verified_this_process[key] = expected_sha256
        return
    actual = sha256_of_file(path)
    if actual != expected_sha256:
        raise ChecksumMismatchError(
            f"{path} has sha256 {actual}, expected {expected_sha256}. The file is corrupt, truncated or a "
            "different release; replace it with the exact file the registry names "
            "(or delete it to re-download)."
        )
    _remember_verified(cache, key, expected_sha256)


# ---- fetching -----------------------------------------------------------------------------
def _where_to_get(spec: RemoteFile) -> str:
    if spec.url:
        gz = getattr(spec, "url_compression", None) == "gzip"
        return (
            f"It can be downloaded from {spec.url}"
            + (" (gzip-compressed: decompress it)" if gz else "")
            + "."
        )
    if spec.file.startswith("moleculenet/"):
        return "Take it from MoleculeNet (https://moleculenet.org) in exactly the release with this checksum."
    if spec.file.startswith("moleculeace/"):
        return "It ships in the PyPI package MoleculeACE 3.0.0, folder MoleculeACE/Data/benchmark_data."
    return "See the data README for where this file comes from."


def _download(spec: RemoteFile, target: Path) -> None:
    """Download ``spec.url`` to ``target`` (decompressing if needed), verified before it appears there."""
    assert spec.url is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(spec.url, headers={"User-Agent": "molchannel-data-fetch"})
        with (
            urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
            os.fdopen(fd, "wb") as out,
        ):
            if getattr(spec, "url_compression", None) == "gzip":
                with gzip.GzipFile(fileobj=response) as unzipped:
                    shutil.copyfileobj(unzipped, out, _CHUNK)
            else:
                shutil.copyfileobj(response, out, _CHUNK)
        actual = sha256_of_file(tmp)
        if actual != spec.sha256:
            raise ChecksumMismatchError(
                f"downloaded {spec.url} but its content has sha256 {actual}, expected {spec.sha256}; "
                f"the upstream file has changed. Place the expected file at {target} yourself."
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def fetch_file(
    spec: RemoteFile,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Local path of the verified file ``spec`` names, downloading it first when missing and allowed.

    Raises :class:`DataNotFoundError` when the file is absent and cannot be downloaded (offline, no
    URL, ``download=False``), and :class:`ChecksumMismatchError` when its bytes are not the expected ones.
    """
    root = resolve_data_dir(data_dir)
    path = root / spec.file
    if not path.is_file():
        if not download:
            failure = "downloading is disabled (download=False)"
        elif not spec.url:
            failure = "it has no known download location"
        else:
            logger.info("downloading %s to %s", spec.url, path)
            try:
                _download(spec, path)
            except OSError as exc:  # URLError, timeouts and disk errors are all OSErrors
                failure = f"the download failed ({exc})"
        if not path.is_file():
            raise DataNotFoundError(
                f"data file {spec.file!r} not found at {path}, and {failure}. Put the file there "
                f"(expected sha256 {spec.sha256}), or point {DATA_DIR_ENV} / data_dir at a folder that "
                f"holds it under {spec.file}. {_where_to_get(spec)}"
            )
    verify_file(path, spec.sha256, cache_dir)
    return path
