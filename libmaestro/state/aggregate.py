"""The aggregated view and rollup of a workflow instance (seed 003), as pure functions.

Per process name, the *latest* record decides, where "latest" orders by run attempt:

- a record that actually happened in that run (pending, running, succeeded, failed, aborted,
  invalidated) is authoritative, so while a run is active a step it has reached shows its
  current state there;
- a ``skipped`` record ("already successful") is transparent: it stands for the success it
  reused, so that step shows as succeeded *in the run where it succeeded*.

On the seed's worked example this gives exactly its answer: step1/2 succeeded in run 1 (skipped in
run 2), step3-5 succeeded in run 2. It differs from a literal "most recent success wins" only when
a later run executed a step again and that execution did not succeed (its inputs changed and it
failed, or it was invalidated): then the old success is stale (its outputs were made from other
inputs or were overwritten) and the view shows the newer outcome, as Netflix Maestro does when a
step is part of the current run instance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from libmaestro.state.records import AggregatedStep, Rollup, StepRecord
from libmaestro.state.states import StepState


def aggregate_steps(steps: Iterable[StepRecord]) -> list[AggregatedStep]:
    """The authoritative state of each step of one instance, in order of first appearance.

    Args:
        steps: every step record of the instance, from every run.
    """
    ordered = sorted(steps, key=lambda s: (s.attempt, s.id))
    by_id = {step.id: step for step in ordered}
    by_name: dict[str, list[StepRecord]] = {}
    for step in ordered:
        by_name.setdefault(step.process, []).append(step)
    result: list[AggregatedStep] = []
    for name, records in by_name.items():
        chosen = _authoritative(records, by_id)
        result.append(
            AggregatedStep(
                process=name,
                state=chosen.state,
                attempt=chosen.attempt,
                step=chosen,
                latest_attempt=records[-1].attempt,
            )
        )
    return result


def _authoritative(records: list[StepRecord], by_id: dict[int, StepRecord]) -> StepRecord:
    """The record that decides a step's state: the latest one, looking through skips."""
    for record in reversed(records):
        if record.state is not StepState.SKIPPED:
            return record
        if record.reused_from is not None and record.reused_from in by_id:
            return by_id[record.reused_from]
    # Only skips whose origin is unknown (not expected in a consistent store): show the skip.
    return records[-1]


def rollup_of(aggregated: Iterable[AggregatedStep]) -> Rollup:
    """Count the aggregated view per state, for the whole instance and per fan-out group."""
    counts: Counter[StepState] = Counter()
    groups: dict[str, Counter[StepState]] = {}
    for item in aggregated:
        counts[item.state] += 1
        if item.step.group:
            groups.setdefault(item.step.group, Counter())[item.state] += 1
    return Rollup(
        counts=dict(counts),
        total=sum(counts.values()),
        groups={name: dict(group) for name, group in groups.items()},
    )
