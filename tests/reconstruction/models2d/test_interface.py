"""reconstruction/models2d/interface.py: the crop <-> image mapping of the 2D model interface."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reconstruction.models2d.interface import crop_images, crop_to_image  # noqa: E402


def test_crop_round_trip(rng):
    # a bright dot at a known sub-pixel position, cropped and mapped back
    img = np.zeros((300, 400, 3), np.uint8)
    img[120, 210] = 255
    box = np.array([[150.3, 80.7, 130.0, 130.0]])
    crop = crop_images([img], box, 260).astype(float)[0, ..., 0]
    ys, xs = np.nonzero(crop > 0)
    w = crop[ys, xs]
    u, v = (xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5  # crop px, edge origin
    back = crop_to_image(np.array([[[u, v, 1.0]]]), box, 260)[0, 0]
    np.testing.assert_allclose(back[:2], [210, 120], atol=0.05)
