"""Cosmic rays cleaned only where the pre-screen finds them: same mask as the whole frame."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from svomflow.tasks.ccd._kernels import _laplacian_plus, lacosmic_candidates, separable_median
from svomflow.tasks.ccd.reduce import DQ_BITS, ReductionConfig, _cosmic_rays, cosmic_ray_boxes

astroscrappy = pytest.importorskip("astroscrappy")

RN = 5.0


def _sepmed_reference(img: np.ndarray, half: int) -> np.ndarray:
    """Rows then columns, pixels within ``half`` of an edge keep their value (astroscrappy)."""
    w = 2 * half + 1
    rows = img.astype(float).copy()
    win = np.lib.stride_tricks.sliding_window_view(img, w, axis=1)
    rows[:, half : img.shape[1] - half] = np.median(win, axis=-1)
    out = rows.copy()
    win = np.lib.stride_tricks.sliding_window_view(rows, w, axis=0)
    out[half : img.shape[0] - half, :] = np.median(win, axis=-1)
    return out


def _frame(seed: int, n: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """Sky, stars and cosmic rays (single pixels, tracks, one at the frame edge), electrons."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    img = np.full((n, n), 500.0)
    for _ in range(60):
        y, x = rng.uniform(0, n, 2)
        img += rng.uniform(500, 30000) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.3**2))
    img = rng.poisson(img).astype(float) + rng.normal(0, RN, img.shape)
    truth = np.zeros((n, n), dtype=bool)
    for k in range(10):
        y, x = rng.integers(10, n - 10, 2)
        if k == 0:
            x = n - 6  # in the band along the frame edge where the pre-screen differs
        length = rng.integers(1, 5)
        for i in range(length):
            img[y + i, min(x + i, n - 1)] += rng.uniform(3000, 20000)
            truth[y + i, min(x + i, n - 1)] = True
    return img, truth


def test_separable_median_against_numpy() -> None:
    img = np.random.default_rng(1).normal(size=(37, 41))
    for half in (2, 3, 4):
        np.testing.assert_array_equal(separable_median(img, half), _sepmed_reference(img, half))


def test_laplacian_plus_against_subsampled_convolution() -> None:
    img = np.random.default_rng(2).uniform(0, 100, (30, 33))
    sub = np.kron(img, np.ones((2, 2)))
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], float)
    conv = np.clip(ndimage.convolve(sub, lap, mode="constant", cval=0.0), 0, None)
    ref = conv.reshape(30, 2, 33, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(_laplacian_plus(img), ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_prescreen_flags_every_first_iteration_detection(seed: int) -> None:
    img, _ = _frame(seed)
    data = img.astype(np.float32)
    first, _ = astroscrappy.detect_cosmics(
        data, gain=1.0, readnoise=RN, satlevel=np.inf, sigclip=5.0, objlim=5.0, niter=1,
        sepmed=True, cleantype="meanmask",
    )  # fmt: skip
    cand = lacosmic_candidates(data, RN**2, 5.0 * (1 - 1e-3), 5.0 * (1 - 1e-3))
    # detections grow to neighbours with a lower threshold: all lie next to a flagged pixel
    near = ndimage.binary_dilation(cand, np.ones((5, 5), bool))
    assert first.any()
    assert not np.any(first & ~near)
    # the pre-screen is selective: the stars are not flagged
    assert cand.sum() < 4 * first.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiled_mask_equals_whole_frame(seed: int) -> None:
    img, truth = _frame(seed)
    dq = np.zeros(img.shape, dtype=np.uint16)
    tiled_cfg = ReductionConfig()
    boxes = cosmic_ray_boxes(img.astype(np.float32), RN, tiled_cfg)
    area = sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes)
    assert len(boxes) > 1 and area < 0.6 * img.size  # the tiled path really runs
    tiled = _cosmic_rays(img, dq, RN, tiled_cfg)
    whole = _cosmic_rays(img, dq, RN, ReductionConfig(cr_prescreen=False))
    np.testing.assert_array_equal(tiled, whole)
    found = (tiled & DQ_BITS["COSMIC_RAY"]) > 0
    # most injected pixels are found (L.A.Cosmic itself misses some on bright stars)
    assert found[truth].mean() > 0.75
    assert found[:, -7:].any()  # the one near the frame edge
