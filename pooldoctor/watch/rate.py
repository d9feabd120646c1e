"""A timeout rate as watch shows it: what was counted over how long, per minute once it can be."""

from __future__ import annotations

from dataclasses import dataclass

from pooldoctor.durations import format_duration

# Timeouts per minute are measured over roughly the last minute.
RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Rate:
    """`count` timeouts over `seconds`; `full_minute` once a whole minute has been watched,
    before which a per-minute figure would be an extrapolation from a few seconds."""

    count: float
    seconds: float
    full_minute: bool

    @property
    def per_minute(self) -> float:
        """Timeouts per minute over the measured span."""
        return self.count * 60.0 / self.seconds

    def cell(self) -> str:
        """For the live view's `timeouts` column: `25.7/min`, or `3 in 7.0s` in the first minute.

        >>> Rate(3, 7, False).cell(), Rate(30, 59.5, True).cell()
        ('3 in 7.0s', '30.3/min')
        """
        if self.full_minute:
            return f"{self.per_minute:.1f}/min"
        return f"{self.count:g} in {format_duration(self.seconds)}"

    def phrase(self) -> str:
        """For the plain status line: `25.7 timeouts/min`, or `3 timeouts in 7.0s`.

        >>> Rate(1, 12, False).phrase(), Rate(0, 60, True).phrase()
        ('1 timeout in 12s', '0.0 timeouts/min')
        """
        if self.full_minute:
            return f"{self.per_minute:.1f} timeouts/min"
        noun = "timeout" if self.count == 1 else "timeouts"
        return f"{self.count:g} {noun} in {format_duration(self.seconds)}"

    def with_count(self, count: float) -> Rate:
        """The same span with another count (a share of this one, or a sum)."""
        return Rate(count, self.seconds, self.full_minute)
