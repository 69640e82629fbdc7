"""Stream stack events, nested stacks included, until the root reaches a terminal status."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.console import Console, elapsed_text

NESTED_STACK = "AWS::CloudFormation::Stack"
SUCCESS = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
CANCELLED = ("Resource creation cancelled", "Resource update cancelled")
# A parent's failure that only points at a child's: shown after the child's own reason.
WRAPPERS = ("Embedded stack", "The following resource(s) failed")
MAX_FAILURES_SHOWN = 5


def is_terminal(status: str) -> bool:
    return not status.endswith("_IN_PROGRESS")


@dataclass
class Watched:
    label: str  # "" for the root, else ChildStack[/GrandChild]
    stack_id: str
    seen: set[str] = field(default_factory=set)


@dataclass
class Watcher:
    """Polls DescribeStackEvents of the root and of every nested stack it sees appear."""

    cfn: Any
    console: Console
    stack_id: str
    stack_name: str
    interval: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    stacks: dict[str, Watched] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    cutoff: dt.datetime | None = None
    started: float = 0.0
    settled: set[str] = field(default_factory=set)  # root-level logical ids that reached *_COMPLETE
    on_poll: Callable[[str], None] | None = None  # called with the root's status after each poll

    def prime(self) -> None:
        """Remember the events from before the execution, so only new ones are shown."""
        root = Watched("", self.stack_id)
        try:
            page = self.cfn.describe_stack_events(StackName=self.stack_id)
            root.seen = {e["EventId"] for e in page.get("StackEvents", [])}
        except Exception as exc:
            raise awsmod.translate(exc, f"reading events of {self.stack_name}") from None
        self.stacks = {self.stack_id: root}
        self.started = self.console.clock()

    def _new_events(self, watched: Watched) -> list[dict[str, Any]]:
        fresh: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs = {"StackName": watched.stack_id}
            if token:
                kwargs["NextToken"] = token
            page = awsmod.call(
                f"reading events of {watched.label or self.stack_name}",
                self.cfn.describe_stack_events,
                **kwargs,
            )
            stop = False
            for event in page.get("StackEvents", []):  # newest first
                if event["EventId"] in watched.seen:
                    stop = True
                    break
                if watched.label and self.cutoff and event["Timestamp"] < self.cutoff:
                    stop = True  # a nested stack's history from before this deploy
                    break
                fresh.append(event)
            token = page.get("NextToken")
            if stop or not token:
                break
        for event in fresh:
            watched.seen.add(event["EventId"])
        return list(reversed(fresh))

    def _label(self, watched: Watched, event: dict[str, Any]) -> str:
        logical = event.get("LogicalResourceId", "")
        if event.get("PhysicalResourceId") == event.get("StackId") or logical == event.get("StackName"):
            return watched.label or self.stack_name  # the stack itself
        return f"{watched.label}/{logical}" if watched.label else logical

    def poll(self) -> None:
        for watched in list(self.stacks.values()):
            for event in self._new_events(watched):
                if self.cutoff is None and not watched.label:
                    self.cutoff = event["Timestamp"] - dt.timedelta(seconds=1)
                self._show(watched, event)
                self._discover(watched, event)

    def _show(self, watched: Watched, event: dict[str, Any]) -> None:
        status = event.get("ResourceStatus", "")
        reason = event.get("ResourceStatusReason") or ""
        label = self._label(watched, event)
        when = elapsed_text(self.console.clock() - self.started)
        line = f"[{when}] {label:<40} {event.get('ResourceType', ''):<36} {status}"
        self.console.say(f"{line}  {reason}".rstrip())
        if status.endswith("_FAILED"):
            self.failures.append({**event, "_label": label})
        if not watched.label and status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            self.settled.add(event.get("LogicalResourceId", ""))

    def _discover(self, watched: Watched, event: dict[str, Any]) -> None:
        if event.get("ResourceType") != NESTED_STACK:
            return
        physical = event.get("PhysicalResourceId") or ""
        if not physical or physical in (event.get("StackId"), event.get("StackName")):
            return
        if physical not in self.stacks:
            label = self._label(watched, event)
            self.stacks[physical] = Watched(label, physical)

    def status(self) -> str:
        out = awsmod.call(
            f"reading stack {self.stack_name}", self.cfn.describe_stacks, StackName=self.stack_id
        )
        return out["Stacks"][0]["StackStatus"]

    def run(self) -> str:
        """Stream events until the root's status is terminal; returns that status."""
        while True:
            self.poll()
            status = self.status()
            if is_terminal(status) and status != "REVIEW_IN_PROGRESS":
                self.poll()  # the last events
                return status
            if self.on_poll is not None:
                self.on_poll(status)
            self.sleep(self.interval)

    def failure_lines(self) -> list[str]:
        """The first failed resources with their reasons, root causes before cancellations."""

        def rank(e: dict[str, Any]) -> tuple[bool, bool, Any]:
            reason = str(e.get("ResourceStatusReason") or "")
            return (reason.startswith(CANCELLED), reason.startswith(WRAPPERS), e.get("Timestamp"))

        shown = sorted(self.failures, key=rank)[:MAX_FAILURES_SHOWN]
        return [
            f"{e['_label']} ({e.get('ResourceType', '')}) {e.get('ResourceStatus', '')}: "
            f"{e.get('ResourceStatusReason') or 'no reason given'}"
            for e in shown
        ]
