"""Dead-time calibration: the non-paralyzable dead time per event of each detector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DeadTime"]


@dataclass(frozen=True)
class DeadTime:
    """Dead time per recorded event (s), per detector name; ``default`` for any other."""

    by_detector: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0

    def of(self, detector: str) -> float:
        """Dead time per event of one detector (s)."""
        return float(self.by_detector.get(detector, self.default))

    @property
    def mean(self) -> float:
        """Mean dead time over the listed detectors (the default when none is listed)."""
        vals = list(self.by_detector.values())
        return float(sum(vals) / len(vals)) if vals else float(self.default)
