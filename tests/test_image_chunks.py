"""Images deflated by ISA-L read back through plain h5py's gzip filter, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from pipeline.image_chunks import create_image_dataset, write_image


def _images(n: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = np.zeros((n, size, size, 4), np.uint8)
    images[:, size // 4:3 * size // 4, size // 4:] = rng.integers(0, 256, (n, size // 2,
                                                                           3 * size // 4, 4))
    images[0] = 0  # an empty image too
    return images


def test_images_read_back_through_the_gzip_filter_in_another_process(tmp_path):
    images = _images(5, 32)
    path = tmp_path / "images.h5"
    with h5py.File(path, "w") as f:
        dataset = create_image_dataset(f, "images", 32)
        for i, image in enumerate(images):
            dataset.resize(i + 1, axis=0)
            write_image(dataset, i, image)
    np.save(tmp_path / "expected.npy", images)
    # A reader that knows nothing of ISA-L: plain h5py in a fresh interpreter.
    code = ("import h5py, numpy as np, sys; f = h5py.File(sys.argv[1]); d = f['images']; "
            "assert d.compression == 'gzip', d.compression; "
            "assert (d[()] == np.load(sys.argv[2])).all(); print(len(d))")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "expected.npy")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    with h5py.File(path) as f:  # the random half does not shrink, the empty rest does
        assert f["images"].id.get_storage_size() < 0.7 * images.nbytes


def test_an_image_of_another_size_or_type_or_past_the_end_is_refused(tmp_path):
    with h5py.File(tmp_path / "images.h5", "w") as f:
        dataset = create_image_dataset(f, "images", 16, count=1)
        with pytest.raises(ValueError, match="shape"):
            write_image(dataset, 0, np.zeros((8, 8, 4), np.uint8))
        with pytest.raises(ValueError, match="float64"):
            write_image(dataset, 0, np.full((16, 16, 4), 300.7))
        with pytest.raises(IndexError, match="image 1 of a dataset of 1"):
            write_image(dataset, 1, np.zeros((16, 16, 4), np.uint8))
        dataset.resize(2, axis=0)
        assert not dataset[1].any()  # nothing was left past the end
