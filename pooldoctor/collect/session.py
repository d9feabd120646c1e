"""One capture: the live sources sampled --samples times, then the sources read once."""

from __future__ import annotations

from dataclasses import replace

from pooldoctor.collect.once import ReadOnce, read_once
from pooldoctor.collect.options import SourceOptions
from pooldoctor.collect.sampling import Clock, RoundCallback, Sampler, utc_now
from pooldoctor.evidence import Evidence, SourceState, SourceStatus
from pooldoctor.interrupts import INTERRUPTS, CaptureInterrupted, interrupt_name


def capture(
    options: SourceOptions, clock: Clock = utc_now, on_round: RoundCallback | None = None
) -> Evidence:
    """Collect evidence from every requested source; failures become source statuses.

    `on_round` hears after each sampling round what each live source gave (for progress output).
    Ctrl-C or SIGTERM stops collection and raises CaptureInterrupted carrying the evidence
    collected so far (the caller writes it and exits 130/143).
    """
    sampler = Sampler(options, clock)
    once = ReadOnce()
    try:
        sampler.open()
        if sampler.live:
            sampler.run(options.samples, on_round)
        sampler.close()

        def reading(phase: str, so_far: ReadOnce) -> None:
            nonlocal once
            sampler.phase, once = phase, so_far

        once = read_once(options, clock, on_phase=reading)
    except INTERRUPTS as exc:
        sampler.close()
        at = clock()
        stopped = SourceStatus(
            "pooldoctor",
            "capture",
            SourceState.ERROR,
            f"{interrupt_name(exc)} while {sampler.phase}; evidence collected until then is kept",
            at,
            at,
        )
        raise CaptureInterrupted(sampler.evidence(once, extra_statuses=(stopped,)), exc) from None
    evidence = sampler.evidence(once)
    from pooldoctor.collect.code import named_frames, scan_frames  # imports the scanner

    return replace(evidence, code=scan_frames(named_frames(evidence)))
