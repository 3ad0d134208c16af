"""Cosmic rays cleaned only where the pre-screen finds them: same mask as the whole frame."""

from __future__ import annotations

import itertools

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
    rng = np.random.default_rng(1)
    ties = rng.integers(0, 4, size=(150, 161)).astype(float)  # many equal values
    for img in (rng.normal(size=(37, 41)), rng.normal(size=(211, 190)), ties, ties[:9, :12]):
        for half in (2, 3, 4):
            np.testing.assert_array_equal(separable_median(img, half), _sepmed_reference(img, half))


@pytest.mark.parametrize("half", [2, 3, 4])
def test_separable_median_network_on_every_order(half: int) -> None:
    """The median networks give the median of every ordering of 5 and 7 values (9: 50 000)."""
    w = 2 * half + 1
    if w < 9:
        orders = np.array(list(itertools.permutations(range(w))), float)
    else:
        rng = np.random.default_rng(3)
        orders = np.array([rng.permutation(w) for _ in range(50_000)], float)
    # one row of the orders end to end: the windows centred on half::w are exactly them
    row = separable_median(orders.reshape(1, -1), half)[0]
    np.testing.assert_array_equal(row[half::w], np.full(len(orders), float(half)))
    with pytest.raises(ValueError, match="half"):
        separable_median(orders[:9], 5)


def _laplacian_reference(img: np.ndarray) -> np.ndarray:
    """L+ by the book: 2x subsampling, Laplacian convolution, clip at 0, 2x2 rebinning."""
    ny, nx = img.shape
    sub = np.kron(img, np.ones((2, 2)))
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], float)
    conv = np.clip(ndimage.convolve(sub, lap, mode="constant", cval=0.0), 0, None)
    return conv.reshape(ny, 2, nx, 2).mean(axis=(1, 3))  # type: ignore[no-any-return]


def test_laplacian_plus_against_subsampled_convolution() -> None:
    img = np.random.default_rng(2).uniform(0, 100, (30, 33))
    np.testing.assert_allclose(
        _laplacian_plus(img), _laplacian_reference(img), rtol=1e-12, atol=1e-9
    )


def _candidates_reference(img: np.ndarray, var: float, sigclip: float, objlim: float) -> np.ndarray:
    """The pre-screen's formulas in plain NumPy, filter by filter."""
    noise = np.sqrt(np.maximum(_sepmed_reference(img + var, 3), 1e-5))
    s = _laplacian_reference(img) / (2.0 * noise)
    sp = s - _sepmed_reference(s, 3)
    f5 = _sepmed_reference(img, 2)
    f = np.maximum((f5 - _sepmed_reference(f5, 4)) / noise, 0.01)
    cand = (sp > sigclip) & (sp / f > objlim)
    band = np.ones(img.shape, bool)
    band[5:-5, 5:-5] = False
    return cand | (band & (sp > sigclip))  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", [0, 1])
def test_prescreen_against_numpy(seed: int) -> None:
    img = _frame(seed, n=200)[0]
    cand = lacosmic_candidates(img, RN**2, 5.0, 5.0)
    ref = _candidates_reference(img, RN**2, 5.0, 5.0)
    assert 10 < ref.sum() < 1000  # cosmic rays and a few star cores: a real test
    # the same arithmetic, except for the rounding of sepmed7(img) + var vs sepmed7(img + var)
    assert np.count_nonzero(cand != ref) <= 1


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


@pytest.mark.parametrize(("seed", "niter"), [(0, 3), (1, 3), (2, 3), (0, 1), (1, 1), (3, 1)])
def test_tiled_mask_equals_whole_frame(seed: int, niter: int) -> None:
    img, truth = _frame(seed)
    dq = np.zeros(img.shape, dtype=np.uint16)
    tiled_cfg = ReductionConfig(cr_niter=niter)
    boxes = cosmic_ray_boxes(img.astype(np.float32), RN, tiled_cfg)
    area = sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes)
    assert len(boxes) > 1 and area < 0.6 * img.size  # the tiled path really runs
    tiled = _cosmic_rays(img, dq, RN, tiled_cfg)
    whole = _cosmic_rays(img, dq, RN, ReductionConfig(cr_prescreen=False, cr_niter=niter))
    np.testing.assert_array_equal(tiled, whole)
    found = (tiled & DQ_BITS["COSMIC_RAY"]) > 0
    # most injected pixels are found (L.A.Cosmic itself misses some on bright stars)
    assert found[truth].mean() > 0.75
    assert found[:, -7:].any()  # the one near the frame edge
