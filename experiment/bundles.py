"""Loading the served model bundles at start, with errors that name the damaged file.

A bundle that cannot be loaded stops the service before it answers anything. The models'
own readers fail with messages such as "File is not a zip file" or CatBoost's "Failed to
read required number of bytes", which name no file; :func:`damaged_file` then checks every
file of the bundle by its format and names the first one that cannot be read.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from recommenders.base import Recommender, read_meta


class BundleError(ValueError):
    """A model bundle that cannot be served; the message names the file and what to do."""


def load_bundle(model_class: type[Recommender], directory: Path) -> Recommender:
    """``model_class.load(directory)``; any failure is a :class:`BundleError` naming the
    damaged file (or the bundle folder, when no single file is to blame)."""
    try:
        return model_class.load(directory)
    except Exception as error:
        raise BundleError(_describe(model_class.name, directory, error)) from error


def check_bundle(model_class: type[Recommender], directory: Path) -> None:
    """What can be checked without loading the model, raising :class:`BundleError` as
    :func:`load_bundle` would: meta.json (model, schema version), every file it lists there
    with its recorded size, and each file readable by its format (:func:`damaged_file`)."""
    try:
        meta = read_meta(directory, model_class.name)
    except Exception as error:
        raise BundleError(_describe(model_class.name, directory, error)) from error
    retrain = _retrain(model_class.name)
    for name in meta.files:
        path = directory / name
        if not path.is_file():
            raise BundleError(f"cannot read {path}: No such file or directory; {retrain}")
    damaged = damaged_file(directory)
    if damaged is not None:
        raise BundleError(f"{damaged[0]} is damaged ({damaged[1]}); {retrain}")
    for name, size in meta.files.items():
        actual = (directory / name).stat().st_size
        if actual != size:
            raise BundleError(
                f"{directory / name} is damaged ({actual:,} bytes; the bundle recorded "
                f"{size:,}); {retrain}"
            )


def damaged_file(directory: Path) -> tuple[Path, str] | None:
    """The first file under ``directory`` that its format cannot read, and why.

    Checked by suffix: ``.json`` parses, ``.npy`` holds as many bytes as its header says,
    ``.npz`` is a zip whose members pass their CRC check, ``.cbm`` is a CatBoost model.
    """
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        check = _CHECKS.get(path.suffix)
        if check is None:
            continue
        try:
            check(path)
        except Exception as error:
            return path, _reason(error)
    return None


def _retrain(name: str) -> str:
    return f"retrain it with `feedlab train {name}` or restore the bundle from a backup"


def _describe(name: str, directory: Path, error: Exception) -> str:
    retrain = _retrain(name)
    if isinstance(error, OSError) and error.filename:
        return f"cannot read {error.filename}: {error.strerror or error}; {retrain}"
    if str(directory) in str(error):
        return str(error)  # the bundle reader's own message names the file already
    damaged = damaged_file(directory)
    if damaged is not None:
        path, reason = damaged
        return f"{path} is damaged ({reason}); {retrain}"
    return f"cannot load the {name!r} bundle in {directory}: {_reason(error)}; {retrain}"


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _npy(path: Path) -> None:
    # a memory map checks the size the header promises without reading the data
    np.load(path, mmap_mode="r", allow_pickle=False)


def _npz(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"member {bad} fails its CRC check")


def _catboost(path: Path) -> None:
    from catboost import CatBoost

    CatBoost().load_model(str(path))


_CHECKS = {".json": _json, ".npy": _npy, ".npz": _npz, ".cbm": _catboost}
