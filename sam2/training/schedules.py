"""Value schedules of the official recipe (fvcore's cosine and constant schedulers).

A schedule maps ``where`` — the fraction of training done, in ``[0, 1)`` — to a value. The learning
rate of a parameter group is its schedule's value times the group's layer-decay multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ConstantSchedule", "CosineSchedule", "Schedule"]


@dataclass(frozen=True)
class CosineSchedule:
    """``end + (start - end) * (1 + cos(pi * where)) / 2``: ``start`` at 0, ``end`` at 1, no warm-up."""

    start: float
    end: float

    def __call__(self, where: float) -> float:
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * where))


@dataclass(frozen=True)
class ConstantSchedule:
    """The same ``value`` everywhere."""

    value: float

    def __call__(self, where: float) -> float:
        return self.value


Schedule = CosineSchedule | ConstantSchedule
