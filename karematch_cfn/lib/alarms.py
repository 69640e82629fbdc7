"""CloudWatch alarms, built one way everywhere (monitoring and audit stacks).

Every alarm names itself ``karematch-<env>-<purpose>``, states its threshold in its description,
and notifies the given topic; metric choices (statistic, period, datapoints, missing data) are
the caller's named constants, recorded in docs/decisions.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import Sub, Template
from troposphere.cloudwatch import Alarm, MetricDimension

from karematch_cfn import names

# TreatMissingData values.
MISSING = "missing"
BREACHING = "breaching"
NOT_BREACHING = "notBreaching"

GREATER = "GreaterThanThreshold"
GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"
LESS = "LessThanThreshold"


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """How an alarm looks at its metric: statistic, period (s), M of N datapoints, missing data."""

    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str


def name(purpose: str) -> Sub:
    """Physical alarm name ``karematch-<env>-<purpose>``."""
    return Sub(f"karematch-{names.ENV}-{purpose}")


def dimensions(**dims: Any) -> list[MetricDimension]:
    return [MetricDimension(Name=k, Value=v) for k, v in dims.items()]


def metric_alarm(
    t: Template,
    logical_id: str,
    *,
    purpose: str,
    description: str,
    namespace: Any,
    metric: str,
    dims: dict[str, Any],
    comparison: str,
    threshold: float,
    evaluation: Evaluation,
    actions: list[Any],
    ok_actions: list[Any] | None = None,
    actions_enabled: Any = None,
) -> Alarm:
    """One alarm on one metric. Percentiles (``p95``) go to ExtendedStatistic.
    ``actions_enabled`` (e.g. an Fn::If) silences the notifications while it is false."""
    stat_key = "ExtendedStatistic" if evaluation.statistic.startswith("p") else "Statistic"
    kwargs: dict[str, Any] = {stat_key: evaluation.statistic}
    if actions_enabled is not None:
        kwargs["ActionsEnabled"] = actions_enabled
    if ok_actions:
        kwargs["OKActions"] = ok_actions
    if dims:
        kwargs["Dimensions"] = dimensions(**dims)
    return t.add_resource(
        Alarm(
            logical_id,
            AlarmName=name(purpose),
            AlarmDescription=description,
            Namespace=namespace,
            MetricName=metric,
            ComparisonOperator=comparison,
            Threshold=threshold,
            Period=evaluation.period,
            EvaluationPeriods=evaluation.evaluation_periods,
            DatapointsToAlarm=evaluation.datapoints_to_alarm,
            TreatMissingData=evaluation.treat_missing_data,
            AlarmActions=actions,
            **kwargs,
        )
    )
