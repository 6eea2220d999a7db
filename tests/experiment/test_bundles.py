import json
import re
from pathlib import Path

import numpy as np
import pytest

from experiment.bundles import BundleError, damaged_file, load_bundle
from recommenders.baselines import PopularityRecommender
from tests.experiment.bundles import save_bundle


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with one intact file of every format the check knows, one level down too."""
    (tmp_path / "tables").mkdir()
    np.save(tmp_path / "tables" / "ids.npy", np.arange(1000))
    np.savez(tmp_path / "weights.npz", w=np.ones((50, 50)), b=np.zeros(50))
    (tmp_path / "layout.json").write_text(json.dumps({"dims": [1, 2, 3]}))
    (tmp_path / "notes.txt").write_text("not checked")
    return tmp_path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_intact_files_pass(files: Path) -> None:
    assert damaged_file(files) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tables/ids.npy", "ValueError: mmap length is greater than file size"),
        ("weights.npz", "BadZipFile"),
        ("layout.json", "JSONDecodeError"),
    ],
)
def test_a_truncated_file_is_named(files: Path, name: str, reason: str) -> None:
    truncate(files / name)
    found = damaged_file(files)
    assert found is not None
    assert found[0] == files / name
    assert found[1].startswith(reason)


def test_a_corrupt_npz_member_fails_its_crc(files: Path) -> None:
    data = bytearray((files / "weights.npz").read_bytes())
    data[200] ^= 0xFF  # inside the first member's data: the zip directory is intact
    (files / "weights.npz").write_bytes(bytes(data))
    found = damaged_file(files)
    assert found is not None
    assert found[0] == files / "weights.npz"


def test_load_bundle_names_the_file_the_reader_did_not(tmp_path: Path) -> None:
    directory = save_bundle(tmp_path, "popular")
    np.save(directory / "extra.npy", np.arange(100))
    truncate(directory / "extra.npy")
    # popularity keeps no model file, so it loads: the check runs only when loading fails
    assert load_bundle(PopularityRecommender, directory).is_fitted
    (directory / "meta.json").write_text("{")
    says = f"{directory / 'meta.json'} is not a valid bundle description"
    with pytest.raises(BundleError, match=re.escape(says)):
        load_bundle(PopularityRecommender, directory)


def test_load_bundle_names_a_missing_file(tmp_path: Path) -> None:
    says = f"no model bundle at {tmp_path}: meta.json is missing"
    with pytest.raises(BundleError, match=re.escape(says)):
        load_bundle(PopularityRecommender, tmp_path)
