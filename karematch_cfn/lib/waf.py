"""AWS WAF web ACLs, made one way for the load balancer (REGIONAL) and CloudFront (CLOUDFRONT).

Every ACL allows by default and blocks with AWS managed rule groups: the core rule set (OWASP
top-10 style), known bad inputs (Log4j and other exploit patterns) and Amazon's IP reputation
list, plus a per-IP rate limit. The core rule set's ``SizeRestrictions_BODY`` (bodies over 8 KB)
only counts: API requests with larger JSON bodies are legitimate.
"""

from __future__ import annotations

from typing import Any

from troposphere import Sub
from troposphere.wafv2 import (
    AllowAction,
    BlockAction,
    CountAction,
    DefaultAction,
    LoggingConfiguration,
    LoggingConfigurationFieldToMatch,
    ManagedRuleGroupStatement,
    OverrideAction,
    RateBasedStatement,
    RuleAction,
    RuleActionOverride,
    SingleHeader,
    Statement,
    VisibilityConfig,
    WebACL,
    WebACLRule,
)

from karematch_cfn.lib import tags

REGIONAL = "REGIONAL"  # ALB, API Gateway (in the stack's region)
CLOUDFRONT = "CLOUDFRONT"  # CloudFront distributions: us-east-1 only
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)
COUNT_ONLY = {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}


def _visibility(metric: str) -> VisibilityConfig:
    return VisibilityConfig(SampledRequestsEnabled=True, CloudWatchMetricsEnabled=True, MetricName=metric)


def _managed(priority: int, name: str) -> WebACLRule:
    overrides = [
        RuleActionOverride(Name=rule, ActionToUse=RuleAction(Count=CountAction()))
        for rule in COUNT_ONLY.get(name, ())
    ]
    statement = ManagedRuleGroupStatement(VendorName="AWS", Name=name)
    if overrides:
        statement.RuleActionOverrides = overrides
    return WebACLRule(
        Name=name,
        Priority=priority,
        Statement=Statement(ManagedRuleGroupStatement=statement),
        OverrideAction=OverrideAction(**{"None": {}}),  # the group's own actions (block)
        VisibilityConfig=_visibility(name),
    )


def _rate_limit(priority: int) -> WebACLRule:
    return WebACLRule(
        Name="RateLimitPerIp",
        Priority=priority,
        Statement=Statement(
            # 2000 requests per IP in any 5-minute window (WAF's default window).
            RateBasedStatement=RateBasedStatement(Limit=2000, AggregateKeyType="IP")
        ),
        Action=RuleAction(Block=BlockAction()),
        VisibilityConfig=_visibility("RateLimitPerIp"),
    )


def request_logs(logical_id: str, *, acl: Any, destination_arn: Any, **extra: Any) -> LoggingConfiguration:
    """The ACL's request logs into an aws-waf-logs- destination, without credentials."""
    return LoggingConfiguration(
        logical_id,
        ResourceArn=acl,
        LogDestinationConfigs=[destination_arn],
        RedactedFields=[
            LoggingConfigurationFieldToMatch(SingleHeader=SingleHeader(Name=header))
            for header in ("authorization", "cookie")  # credentials and sessions never reach the logs
        ],
        **extra,
    )


def web_acl(logical_id: str, *, scope: str, name_pattern: str, description: str, **extra: Any) -> WebACL:
    """A web ACL: the managed rule groups in order, then the per-IP rate limit."""
    rules = [_managed(i, group) for i, group in enumerate(MANAGED_RULE_GROUPS)]
    rules.append(_rate_limit(len(rules)))
    return WebACL(
        logical_id,
        Name=Sub(name_pattern),
        Scope=scope,
        Description=description,
        DefaultAction=DefaultAction(Allow=AllowAction()),
        Rules=rules,
        VisibilityConfig=_visibility(logical_id),
        Tags=tags.standard(),
        **extra,
    )
