"""Whether a T90 can be reported, from where the burst lies in the data.

Shared by the VHF quick analysis and the X-band analysis: a burst whose tail (or start) is
cut by the end (or start) of the data has no background plateau on that side, so its total
counts and T90 are unknown and are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from svomflow.tasks.timing.background import BackgroundModel
from svomflow.tasks.timing.duration import DurationConfig

__all__ = ["T90Status", "t90_status"]


@dataclass(frozen=True)
class T90Status:
    """Whether T90 was measured, and if not why (``quality`` goes to the QT90 QUALITY keyword).

    ``quality``: ``GOOD`` (measured, no flag), ``FLAGGED`` (measured, read the flags),
    ``TAIL_AT_DATA_END`` (the burst is still above the background at the end of the data:
    no post-burst plateau, so the burst total and T90 are unknown), ``START_AT_DATA_START``
    (the same at the beginning), ``NOT_MEASURED`` (another reason, in ``reason``).
    """

    quality: str
    reason: str = ""

    @property
    def measured(self) -> bool:
        """Whether a T90 was measured."""
        return self.quality in ("GOOD", "FLAGGED")


def t90_status(
    bkg: BackgroundModel,
    data_span: tuple[float, float],
    dt_s: float,
    config: DurationConfig,
    durations_error: str | None,
    flags: list[str],
) -> T90Status:
    """Decide whether a T90 can be reported, from the burst's place in the data.

    The burst total of the Koshut method is the difference of two background plateaus of
    ``max(plateau_s, plateau_fraction * extent, plateau_min_bins * dt)``; the duration step
    flags a plateau shorter than half that. With less than that half of data beyond the
    excess found (``bkg.source``) the tail may go on past the end of the data: the total and
    T90 would be underestimated with an error that does not say so. Such a burst (and one where the duration step found no
    plateau at all) is ``TAIL_AT_DATA_END`` (``START_AT_DATA_START`` at the other end), and
    no T90 is reported; any other duration error is ``NOT_MEASURED``.
    """
    s0, s1 = bkg.source
    plateau = max(
        config.plateau_s, config.plateau_fraction * (s1 - s0), config.plateau_min_bins * dt_s
    )
    need = 0.5 * plateau
    after = data_span[1] - s1
    before = s0 - data_span[0]
    why = f" ({durations_error})" if durations_error else ""
    if after < need:
        return T90Status(
            "TAIL_AT_DATA_END",
            f"the excess over background ends {after:.3f} s before the end of the data "
            f"(less than half a background plateau, {need:.3f} s): no post-burst background plateau, the "
            f"tail may go on past the data; T90 not reported{why}",
        )
    if before < need:
        return T90Status(
            "START_AT_DATA_START",
            f"the excess over background starts {before:.3f} s after the start of the data "
            f"(less than half a background plateau, {need:.3f} s): no pre-burst background plateau; "
            f"T90 not reported{why}",
        )
    if durations_error is not None:
        return T90Status("NOT_MEASURED", f"T90 not measured: {durations_error}")
    return T90Status("FLAGGED" if flags else "GOOD")
