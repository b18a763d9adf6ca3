"""Pure evaluation of permissives/interlocks over a snapshot of endpoint states.

No I/O and no clock: given the rules and the states, the answer is always the same, so the rules
can be table-tested and the operator is shown exactly which rule blocks an action and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from bevforge.config import COMPARATORS, Condition, Endpoint, Interlock
from bevforge.domain import EndpointState, InterlockVerdict, Quality, Value


def is_active_value(rule: Interlock, target: Endpoint, value: Value | None) -> bool:
    """Would the target be in the state the rule guards (heater ON, pump speed > 0)?"""
    if value is None:
        return False
    if rule.active_when is not None:
        return _compare(value, rule.active_when)
    if isinstance(value, bool):
        return value
    return value > 0


def _compare(left: Value, cond: Condition) -> bool:
    right = cond.value
    if isinstance(right, bool) or isinstance(left, bool):
        left, right = bool(left), bool(right)
    try:
        return bool(COMPARATORS[cond.op](left, right))
    except TypeError:
        return False


def describe(cond: Condition, endpoints: Mapping[int, Endpoint], state: EndpointState | None,
             shown: bool = True) -> str:
    """The condition in words with its live value; `shown=False` (another node's endpoint, for a
    node-limited reader) names the condition but not the value."""
    ep = endpoints.get(cond.endpoint)
    name = ep.name if ep else f"endpoint {cond.endpoint}"
    want = str(cond.value).lower() if isinstance(cond.value, bool) else f"{cond.value:g}"
    if not shown:
        now = "hidden: not on your nodes"
    elif state is None or state.value is None or state.quality is not Quality.GOOD:
        now = "unknown (no good reading)" if state is None or state.quality is Quality.BAD else "stale"
    else:
        now = str(state.value).lower() if isinstance(state.value, bool) else f"{state.value:g}"
    unit = f" {ep.unit}" if ep and ep.unit and not isinstance(cond.value, bool) else ""
    return f"{name} {cond.op} {want}{unit} (is {now})"


def condition_holds(cond: Condition, state: EndpointState | None) -> bool:
    """A condition holds only on a GOOD value: a stale or bad reading never permits anything."""
    if state is None or state.value is None or state.quality is not Quality.GOOD:
        return False
    return _compare(state.value, cond)


def evaluate(
    rule: Interlock,
    endpoints: Mapping[int, Endpoint],
    states: Mapping[int, EndpointState],
    target_value: Value | None,
    shown: Callable[[int], bool] | None = None,
) -> InterlockVerdict:
    """Evaluate one rule as if the target had `target_value`.

    `shown` says whose values the reader may see (`permissions.value_filter`): the verdict is the
    same, only the words of a hidden condition leave its value out.
    """
    target = endpoints[rule.target]
    applies = is_active_value(rule, target, target_value)
    failed = [describe(c, endpoints, states.get(c.endpoint), shown is None or shown(c.endpoint))
              for c in rule.requires if not condition_holds(c, states.get(c.endpoint))]
    return InterlockVerdict(
        rule_id=rule.id,
        target=rule.target,
        satisfied=not failed,
        applies=applies,
        reason=rule.reason,
        failed_conditions=failed,
    )


def blocking_rules(
    rules: Iterable[Interlock],
    endpoints: Mapping[int, Endpoint],
    states: Mapping[int, EndpointState],
    endpoint_id: int,
    value: Value,
) -> list[InterlockVerdict]:
    """Rules that forbid commanding `endpoint_id` to `value` right now."""
    verdicts = []
    for rule in rules:
        if rule.target != endpoint_id:
            continue
        verdict = evaluate(rule, endpoints, states, value)
        if verdict.applies and not verdict.satisfied:
            verdicts.append(verdict)
    return verdicts


def violated_running(
    rules: Iterable[Interlock],
    endpoints: Mapping[int, Endpoint],
    states: Mapping[int, EndpointState],
) -> list[InterlockVerdict]:
    """Tripping rules whose output is running while a required condition no longer holds."""
    out = []
    for rule in rules:
        if not rule.trip:
            continue
        target = endpoints[rule.target]
        state = states.get(target.feedback_id)
        current = state.value if state is not None else None
        verdict = evaluate(rule, endpoints, states, current)
        if verdict.applies and not verdict.satisfied:
            out.append(verdict)
    return out
