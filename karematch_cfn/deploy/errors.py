"""Exit codes and the errors that carry them (one table: ``--help``, README, docs/exit-codes.md)."""

from __future__ import annotations

import textwrap

EXIT_OK = 0
EXIT_LINT = 1
EXIT_BAD_INPUT = 2
EXIT_GUARD = 3
EXIT_DEPLOY_FAILED = 4
EXIT_AWS_ACCESS = 5
EXIT_UNPROTECTED = 6
EXIT_STACK_MISSING = 7
EXIT_BUSY = 8
EXIT_ROLLED_BACK = 9
EXIT_SMOKE = 10
EXIT_DRIFT = 11
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success: deployed, no changes, dry run, or execution declined at the prompt"),
    (
        EXIT_LINT,
        "cfn-lint findings, stale templates/ (not what the code renders), an "
        "unreadable template, or a template over a CloudFormation limit",
    ),
    (
        EXIT_BAD_INPUT,
        "bad input: options (a stack name, bucket name or poll interval not "
        "allowed, an --out that cannot be written), an AWS_ENDPOINT_URL that is "
        "not a URL, unknown environment, parameter file, missing templates, no "
        "AWS region, no terminal to confirm without --yes, or a live stack of "
        "another environment",
    ),
    (
        EXIT_GUARD,
        "the data guard refused: a stateful resource would be removed or replaced "
        "(the change set is kept for review, except with --dry-run)",
    ),
    (
        EXIT_DEPLOY_FAILED,
        "deploy failed: change set failed, execution failed or rolled back, "
        "the stack is in a failed or busy state, or a service quota cannot hold "
        "the deploy (checked before any change set)",
    ),
    (
        EXIT_AWS_ACCESS,
        "AWS access problem: no credentials, unknown profile, access denied, "
        "artifacts bucket not ours or forbidden, endpoint unreachable",
    ),
    (
        EXIT_UNPROTECTED,
        "deployed (or no changes), but prod protection was NOT fully applied: "
        "what failed and the commands to apply it are printed",
    ),
    (
        EXIT_STACK_MISSING,
        "status, destroy, smoke, publish-frontend: the stack does not exist (nothing was changed)",
    ),
    (
        EXIT_BUSY,
        "status: the stack (or a nested stack) is busy: an operation is in progress; wait and run it again",
    ),
    (
        EXIT_ROLLED_BACK,
        "status: the stack is stable but its last deploy failed and was rolled back "
        "(UPDATE_ROLLBACK_COMPLETE): the previous version runs",
    ),
    (
        EXIT_SMOKE,
        "smoke (also at the end of deploy): a check failed after retrying until its deadline; "
        "a deploy that ends so is deployed",
    ),
    (
        EXIT_DRIFT,
        "drift: resources were changed outside CloudFormation (each printed with its differing "
        "properties); deploy in prod (or with --check-drift) refuses such a stack unless --allow-drift",
    ),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C): the stack's state and how to continue are printed"),
)


def exit_code_text() -> str:
    """The table as plain text for ``--help``."""
    lines = ["exit codes:"]
    for code, text in EXIT_CODES:
        lines += textwrap.wrap(text, width=88, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
    return "\n".join(lines)


def exit_code_markdown() -> str:
    """The table as Markdown (docs/exit-codes.md, pasted into the README)."""
    rows = ["| Exit code | Meaning |", "|---:|---|"]
    rows += [f"| {code} | {text} |" for code, text in EXIT_CODES]
    return "\n".join(rows)


class DeployError(Exception):
    """An expected failure: printed as one ``error:`` line (plus hints), no traceback."""

    code = EXIT_DEPLOY_FAILED

    def __init__(self, message: str, *hints: str) -> None:
        super().__init__(message)
        self.message = message
        self.hints = list(hints)


class LintError(DeployError):
    code = EXIT_LINT


class BadInput(DeployError):
    code = EXIT_BAD_INPUT


class GuardRefused(DeployError):
    code = EXIT_GUARD


class DeployFailed(DeployError):
    code = EXIT_DEPLOY_FAILED


class AccessProblem(DeployError):
    code = EXIT_AWS_ACCESS


class ProtectionIncomplete(DeployError):
    """The deploy succeeded; termination protection or a stack policy could not be set."""

    code = EXIT_UNPROTECTED


class Interrupted(DeployError):
    code = EXIT_INTERRUPTED


class StackMissing(DeployError):
    code = EXIT_STACK_MISSING


class StackBusy(DeployError):
    code = EXIT_BUSY


class RolledBack(DeployError):
    code = EXIT_ROLLED_BACK


class SmokeFailed(DeployError):
    code = EXIT_SMOKE


class DriftFound(DeployError):
    code = EXIT_DRIFT
