"""VHF light-curve previews: display binning keeps the information, drawing stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from svomflow.tasks.timing import BinnedCounts
from svomflow.tasks.vhf.curves import BandCurve, InstrumentTiming
from svomflow.tasks.vhf.previews import display_bins, lightcurve_figure


def _curve(
    dt: float, span: tuple[float, float], gap: tuple[float, float], seed: int
) -> BinnedCounts:
    """Poisson counts in ``dt`` bins over ``span`` with no bins inside ``gap``."""
    edges = np.arange(span[0], span[1] + 0.5 * dt, dt)
    lo, hi = edges[:-1], edges[1:]
    keep = (hi <= gap[0]) | (lo >= gap[1])
    lo, hi = lo[keep], hi[keep]
    rng = np.random.default_rng(seed)
    rate = 500.0 + 4000.0 * np.exp(-0.5 * ((lo - 10.0) / 3.0) ** 2)
    counts = rng.poisson(rate * (hi - lo)).astype(float)
    return BinnedCounts(lo=lo, hi=hi, counts=counts, exposure=(hi - lo) * 0.97)


def _timing(fine_dt: float) -> InstrumentTiming:
    gap = (30.0, 35.0)
    main = BandCurve((4.0, 120.0), _curve(0.256, (-20.0, 80.0), gap, 1), None)
    bands = [
        BandCurve((4.0, 20.0), _curve(fine_dt, (-20.0, 80.0), gap, 2), None),
        BandCurve((20.0, 50.0), _curve(fine_dt, (-20.0, 80.0), gap, 3), None),
    ]
    return InstrumentTiming(
        instrument="ECL",
        band_kev=(4.0, 120.0),
        curve=main,
        durations=None,
        peaks=[],
        trigger=None,
        hardness=None,
        light_curves=bands,
        oblc=[],
        detector_net={},
    )


def test_display_bins_conserve_counts_and_respect_gaps() -> None:
    b = _curve(0.004, (-20.0, 80.0), (30.0, 35.0), 7)
    d = display_bins(b)
    assert d.lo.size <= 800
    # every input bin lands in exactly one display bin, none straddles the gap
    idx = np.searchsorted(d.lo, b.lo, side="right") - 1
    assert np.all(b.hi <= d.hi[idx] + 1e-9)
    assert not np.any((d.lo < 30.0) & (d.hi > 35.0))
    np.testing.assert_allclose(d.gaps, [[30.0, 35.0]], atol=0.0041)  # edges on the 4 ms grid
    c = np.bincount(idx, weights=b.counts, minlength=d.lo.size)
    e = np.bincount(idx, weights=b.exposure, minlength=d.lo.size)
    np.testing.assert_allclose(d.rate * e, c, rtol=1e-12)
    assert c.sum() == b.counts.sum()
    np.testing.assert_allclose(d.error, np.sqrt(np.maximum(c, 1)) / e, rtol=1e-12)


def test_display_bins_keep_coarse_bins() -> None:
    b = _curve(1.0, (0.0, 50.0), (60.0, 61.0), 3)
    d = display_bins(b)
    np.testing.assert_array_equal(d.lo, b.lo)
    np.testing.assert_allclose(d.rate, b.counts / b.exposure)


def _vertices(fig: Figure) -> int:
    n = 0
    for ax in fig.axes:
        n += sum(len(line.get_xdata()) for line in ax.get_lines())
        for coll in ax.collections:
            n += sum(len(p.vertices) for p in coll.get_paths())
    return n


@pytest.mark.parametrize("fine_dt", [0.004, 0.001])
def test_lightcurve_drawing_does_not_grow_with_bins(fine_dt: float) -> None:
    """Fine analysis bins (25k-100k per band) are drawn as a bounded number of vertices."""
    model = lightcurve_figure(_timing(fine_dt), title="test")
    fig = Figure(figsize=model.size_in, dpi=model.dpi)
    model.draw(fig)
    assert fig.get_layout_engine() is None
    assert len(fig.axes) == 3
    assert _vertices(fig) < 3 * 6 * 800
    # the T90 band, the error band and the gap appear in the legend of the first panel
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "4-120 keV" in labels and "1-sigma error" in labels and "data gap" in labels
    # the other panels name their band, on the same time axis, labelled at the bottom only
    assert [t.get_text() for t in fig.axes[1].texts] == ["4-20 keV"]
    assert [t.get_text() for t in fig.axes[2].texts] == ["20-50 keV"]
    assert {ax.get_xlim() for ax in fig.axes} == {fig.axes[0].get_xlim()}
    assert len(fig.axes[0].get_xticks()) == 0 and len(fig.axes[2].get_xticks()) > 0


def test_lightcurve_png_written(tmp_path: Path) -> None:
    out = tmp_path / "lc.png"
    lightcurve_figure(_timing(0.004), title="test").write(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
