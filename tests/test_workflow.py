""".github/workflows/deploy.yml: what runs when, in which order, with which AWS identity, and
that every command it runs exists in this project and accepts the arguments it is given.

The workflow is data here (PyYAML); nothing is executed. Its roles and GitHub environments are
checked against the OIDC trust in templates/bootstrap.yaml, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from functools import lru_cache
from typing import Any

import pytest
import yaml

from karematch_cfn import config, evaluate, names
from karematch_cfn.stacks import bootstrap
from tests import helpers

WORKFLOW = helpers.REPO / ".github" / "workflows" / "deploy.yml"
MAKEFILE = helpers.REPO / "Makefile"
CI_DOC = helpers.REPO / "docs" / "ci.md"
VENV_PYTHON = ".venv/bin/python"
CONFIGURE_CREDENTIALS = "aws-actions/configure-aws-credentials"
# Repository variables the workflow may use, with a value of the right shape for parsing.
VARIABLES = {
    **{
        f"{env.upper()}_{kind}": value.format(env=env, account=account)
        for env, account in (("dev", "000000000000"), ("staging", "111111111111"), ("prod", "222222222222"))
        for kind, value in (
            (
                "DEPLOY_ROLE_ARN",
                "arn:aws:iam::{account}:role/karematch-bootstrap-{env}-github-deploy-us-east-1",
            ),
            (
                "CFN_EXECUTION_ROLE_ARN",
                "arn:aws:iam::{account}:role/karematch-bootstrap-{env}-cfn-exec-us-east-1",
            ),
            ("ARTIFACTS_BUCKET", "karematch-cfn-artifacts-{env}-{account}-us-east-1"),
        )
    },
    "AWS_PLAN_ROLE_ARN": "arn:aws:iam::000000000000:role/karematch-bootstrap-dev-github-plan-us-east-1",
    "AWS_PLAN_ARTIFACTS_BUCKET": "karematch-cfn-plan-artifacts-000000000000-us-east-1",
    "AWS_REGION": "us-east-1",
    "PROD_CERTIFICATE_ARN": "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000",
    "STAGING_CERTIFICATE_ARN": "arn:aws:acm:us-east-1:000000000000:certificate/11111111-1111-1111-1111-111111111111",
    "PROD_API_DOMAIN_NAME": "api.karematch.example",
    "STAGING_API_DOMAIN_NAME": "api.staging.karematch.example",
}
# Which bootstrap Output each role variable is set from (docs/ci.md).
# (the environment whose bootstrap stack creates the role, the role's logical id)
ROLE_VARIABLES = {
    **{f"{env.upper()}_DEPLOY_ROLE_ARN": (env, bootstrap.DEPLOY_ROLE) for env in names.ENVIRONMENTS},
    "AWS_PLAN_ROLE_ARN": ("dev", bootstrap.PLAN_ROLE),
}
FULL_SHA = re.compile(r"[0-9a-f]{40}")
OTHER_EXPRESSIONS = {
    "steps.python.outputs.python-path": "/opt/hostedtoolcache/Python/3.11.9/x64/bin/python3.11",
}


# ------------------------------------------------------------------------------------------
# Reading the workflow
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # PyYAML implements YAML 1.1, where a bare `on` key is the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def jobs() -> dict[str, dict[str, Any]]:
    return workflow()["jobs"]


def _expression(text: str) -> str:
    """``${{ expr }}`` replaced by a value of the right shape (unknown expressions fail)."""

    def value(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("vars."):
            assert expr[5:] in VARIABLES, f"unknown repository variable {expr}"
            return VARIABLES[expr[5:]]
        assert expr in OTHER_EXPRESSIONS, f"unexpected expression in a command: {expr}"
        return OTHER_EXPRESSIONS[expr]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _env(job: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    env = {**workflow().get("env", {}), **job.get("env", {}), **step.get("env", {})}
    return {k: _expression(str(v)) for k, v in env.items()}


def commands(job: dict[str, Any]) -> list[list[str]]:
    """Every command the job's run steps execute, as argv after the shell's expansion of the
    step's env variables (only "$NAME" forms are used)."""
    out = []
    for step in job.get("steps", []):
        if "run" not in step:
            continue
        env = _env(job, step)
        script = re.sub(r"\\\n", " ", step["run"])
        for line in script.splitlines():
            for part in re.split(r"&&|;|\|\|", line):
                if not part.strip():
                    continue
                text = re.sub(
                    r"\$\{?([A-Z_][A-Z0-9_]*)\}?",
                    lambda m, env=env, part=part: (
                        env[m.group(1)]
                        if m.group(1) in env
                        else pytest.fail(f"{part}: ${m.group(1)} is not set in the step's env")
                    ),
                    part,
                )
                assert "${{" not in text, f"an expression is spliced into the script: {part}"
                out.append(shlex.split(text))
    return out


def all_commands() -> list[tuple[str, list[str]]]:
    return [(name, argv) for name, job in jobs().items() for argv in commands(job)]


def deployer_args(job: dict[str, Any]) -> list[list[str]]:
    """The argument lists of the job's ``python -m karematch_cfn`` commands."""
    return [argv[3:] for argv in commands(job) if argv[:3] == [VENV_PYTHON, "-m", "karematch_cfn"]]


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]


def deploy_job(env: str) -> tuple[str, dict[str, Any]]:
    """The job that deploys (or plans) ``env`` for pushes: the one running deploy --env ENV
    without --dry-run."""
    found = [
        (n, j)
        for n, j in jobs().items()
        for a in deployer_args(j)
        if _option(a, "--env") == [env] and "--dry-run" not in a
    ]
    assert len(found) == 1, f"expected one job deploying {env}, found {[n for n, _ in found]}"
    return found[0]


def plan_jobs() -> list[tuple[str, dict[str, Any]]]:
    return [(n, j) for n, j in jobs().items() if any("--dry-run" in a for a in deployer_args(j))]


def credentials_step(job: dict[str, Any]) -> dict[str, Any] | None:
    steps = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(CONFIGURE_CREDENTIALS)]
    assert len(steps) <= 1
    return steps[0] if steps else None


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _test_job() -> str:
    found = [n for n, j in jobs().items() if any(a[:2] == ["make", "test"] for a in commands(j))]
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------------------------------
# Triggers and order
# ------------------------------------------------------------------------------------------
def test_runs_on_pull_requests_and_on_pushes_to_main():
    on = workflow()["on"]
    assert set(on) == {"pull_request", "push"}
    assert on["push"]["branches"] == ["main"] == [bootstrap.DEPLOY_BRANCH]
    assert on["pull_request"]["branches"] == ["main"]


def test_every_event_runs_the_tests_and_the_golden_check():
    name = _test_job()
    job = jobs()[name]
    assert "if" not in job, "the test job must run for pull requests and pushes alike"
    argvs = commands(job)
    assert [VENV_PYTHON, "build.py", "--check"] in argvs
    assert argvs.index([VENV_PYTHON, "build.py", "--check"]) > [a[:2] for a in argvs].index(["make", "test"])


def test_deploys_run_dev_then_staging_then_prod_on_pushes_to_main_only():
    dev, staging, prod = (deploy_job(env) for env in ("dev", "staging", "prod"))
    assert _needs(dev[1]) == [_test_job()]
    assert _needs(staging[1]) == [dev[0]]
    assert _needs(prod[1]) == [staging[0]]
    for _, job in (dev, staging, prod):
        assert job["if"].replace(" ", "") == "github.event_name=='push'&&github.ref=='refs/heads/main'"


def test_pull_requests_only_plan_dev_after_the_tests():
    plans = plan_jobs()
    assert len(plans) == 1
    _name, job = plans[0]
    assert _needs(job) == [_test_job()]
    assert job["if"].startswith("github.event_name == 'pull_request'")
    # Fork pull requests get no OIDC token: skip rather than fail.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    for args in deployer_args(job):
        assert _option(args, "--env") == ["dev"]
        assert "--dry-run" in args and "--yes" not in args and "-y" not in args


def test_deploy_jobs_execute_without_a_terminal():
    for env in names.ENVIRONMENTS:
        _, job = deploy_job(env)
        (args,) = deployer_args(job)
        assert args[0] == "deploy" and "--yes" in args and "--dry-run" not in args
        assert _option(args, "--cfn-role-arn") == [VARIABLES[f"{env.upper()}_CFN_EXECUTION_ROLE_ARN"]]


def test_staging_and_prod_wait_for_their_gated_github_environments():
    assert "environment" not in deploy_job("dev")[1]
    for env in bootstrap.GATED_ENVIRONMENTS:
        environment = deploy_job(env)[1]["environment"]
        assert (environment if isinstance(environment, str) else environment["name"]) == env
    assert set(bootstrap.GATED_ENVIRONMENTS) == set(names.ENVIRONMENTS) - {"dev"}


def test_staging_and_prod_get_their_certificates_from_repository_variables():
    for env, prefix in (("staging", "STAGING"), (names.PRODUCTION, "PROD")):
        (args,) = deployer_args(deploy_job(env)[1])
        assert _option(args, "--parameter") == [
            f"{names.CERTIFICATE_ARN}={VARIABLES[prefix + '_CERTIFICATE_ARN']}",
            f"{names.API_DOMAIN_NAME}={VARIABLES[prefix + '_API_DOMAIN_NAME']}",
        ]
    (args,) = deployer_args(deploy_job("dev")[1])
    assert not _option(args, "--parameter")


def test_every_deploy_command_satisfies_the_root_templates_rules():
    # The root's Rules (HTTPS outside dev, ...) as the deployer applies them before any deploy.
    root_template = helpers.template("karematch.yaml")
    for env in names.ENVIRONMENTS:
        (args,) = deployer_args(deploy_job(env)[1])
        overrides = dict(p.split("=", 1) for p in _option(args, "--parameter"))
        cfg = config.load(helpers.REPO / "parameters" / f"{env}.json", root_template)
        config.check_rules(config.with_overrides(cfg, overrides, root_template), root_template)


def test_one_deploy_per_environment_at_a_time_never_cancelled_midway():
    groups = set()
    for env in names.ENVIRONMENTS:
        conc = deploy_job(env)[1]["concurrency"]
        assert conc["cancel-in-progress"] is False
        assert env in conc["group"]
        groups.add(conc["group"])
    assert len(groups) == len(names.ENVIRONMENTS)
    for _, job in plan_jobs():  # a plan never shares a group with (and so never cancels) a deploy
        assert job["concurrency"]["group"] not in groups


# ------------------------------------------------------------------------------------------
# AWS identity: OIDC only, the right role for the right job
# ------------------------------------------------------------------------------------------
def test_id_token_only_where_aws_credentials_are_needed():
    assert workflow()["permissions"] == {"contents": "read"}
    for name, job in jobs().items():
        if credentials_step(job):
            assert job["permissions"] == {"contents": "read", "id-token": "write"}, name
        else:
            assert "id-token" not in job.get("permissions", {}), name


def test_credentials_come_from_oidc_roles_in_repository_variables():
    seen = set()
    for name, job in jobs().items():
        step = credentials_step(job)
        if step is None:
            continue
        owner_repo, ref = step["uses"].split("@")
        assert owner_repo == CONFIGURE_CREDENTIALS and FULL_SHA.fullmatch(ref)
        inputs = step["with"]
        assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(inputs)
        m = re.fullmatch(r"\$\{\{\s*vars\.([A-Z_]+)\s*\}\}", inputs["role-to-assume"])
        assert m and m.group(1) in ROLE_VARIABLES, name
        assert re.fullmatch(r"\$\{\{\s*vars\.AWS_REGION\s*\}\}", inputs["aws-region"])
        seen.add(m.group(1))
        # the role step comes before the first AWS command
        steps = job["steps"]
        first_aws = next(i for i, s in enumerate(steps) if "karematch_cfn" in s.get("run", ""))
        assert steps.index(step) < first_aws
    assert seen == set(ROLE_VARIABLES)


def _oidc_subject(job: dict[str, Any]) -> str:
    """The subject claim GitHub puts in the job's OIDC token (default claim format)."""
    env = job.get("environment")
    if env:
        return f"environment:{env if isinstance(env, str) else env['name']}"
    if job["if"].startswith("github.event_name == 'pull_request'"):
        return "pull_request"
    assert "refs/heads/main" in job["if"]
    return "ref:refs/heads/main"


def test_each_job_assumes_a_role_that_trusts_exactly_that_job():
    for name, job in jobs().items():
        step = credentials_step(job)
        if step is None:
            continue
        variable = re.search(r"vars\.([A-Z_]+)", step["with"]["role-to-assume"]).group(1)
        env, logical_id = ROLE_VARIABLES[variable]
        t = evaluate.resolve(helpers.template("bootstrap.yaml"), {"EnvironmentName": env})
        role = t["Resources"][logical_id]
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        subjects = [
            helpers.sub_text(s)
            for s in statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        ]
        subjects = [x.replace("${EnvironmentName}", env) for x in subjects]
        assert subjects == [f"repo:${{GitHubRepository}}:{_oidc_subject(job)}"], name
    # the plan job's role cannot execute what it plans
    assert ROLE_VARIABLES["AWS_PLAN_ROLE_ARN"] == ("dev", bootstrap.PLAN_ROLE)
    for _, job in plan_jobs():
        assert "AWS_PLAN_ROLE_ARN" in credentials_step(job)["with"]["role-to-assume"]
    for env in names.ENVIRONMENTS:  # each environment's own role, execution role and bucket
        job = deploy_job(env)[1]
        assert f"{env.upper()}_DEPLOY_ROLE_ARN" in credentials_step(job)["with"]["role-to-assume"]
        (args,) = deployer_args(job)
        assert _option(args, "--cfn-role-arn") == [VARIABLES[f"{env.upper()}_CFN_EXECUTION_ROLE_ARN"]]


def test_sessions_last_as_long_as_the_role_allows_and_the_job_may_run():
    t = evaluate.resolve(helpers.template("bootstrap.yaml"), {"EnvironmentName": "prod"})
    limit = t["Resources"][bootstrap.DEPLOY_ROLE]["Properties"]["MaxSessionDuration"]
    for env in names.ENVIRONMENTS:
        job = deploy_job(env)[1]
        seconds = int(credentials_step(job)["with"]["role-duration-seconds"])
        assert seconds <= limit
        assert job["timeout-minutes"] * 60 >= seconds


def test_plans_upload_to_the_plan_bucket_not_the_deploy_bucket():
    for _, job in plan_jobs():
        for args in deployer_args(job):
            assert _option(args, "--artifact-bucket") == [VARIABLES["AWS_PLAN_ARTIFACTS_BUCKET"]]
    for env in names.ENVIRONMENTS:  # each environment its own bucket (bootstrap.yaml)
        (args,) = deployer_args(deploy_job(env)[1])
        assert _option(args, "--artifact-bucket") == [VARIABLES[f"{env.upper()}_ARTIFACTS_BUCKET"]]


def test_no_secrets_keys_or_account_ids_in_the_file():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets." not in text
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", text), "a literal AWS account id"
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), "an access key id"
    assert "arn:aws" not in text, "a literal ARN: use a repository variable"
    used = set(re.findall(r"vars\.([A-Za-z0-9_]+)", text))
    assert used == set(VARIABLES)


def test_the_setup_doc_names_every_variable_and_where_its_value_comes_from():
    doc = CI_DOC.read_text(encoding="utf-8")
    for variable in VARIABLES:
        assert f"`{variable}`" in doc, variable
    for output in helpers.template("bootstrap.yaml")["Outputs"]:
        assert f"`{output}`" in doc, output
    for env in bootstrap.GATED_ENVIRONMENTS:
        assert f"`{env}`" in doc


def test_actions_are_pinned_to_a_full_commit_sha_with_the_version_in_a_comment():
    """A tag can be moved to other code; a commit cannot (zizmor's unpinned-uses audit).
    Dependabot updates the SHA and the comment together."""
    uses_lines = [
        line.strip()
        for line in WORKFLOW.read_text().splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert uses_lines
    for line in uses_lines:
        assert re.fullmatch(
            r"(- )?uses: (actions|aws-actions)/[a-z-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line
        ), line
    for name, job in jobs().items():
        checkout = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkout and checkout[0]["with"]["persist-credentials"] is False, name


# ------------------------------------------------------------------------------------------
# Every command exists here, with arguments its parser accepts
# ------------------------------------------------------------------------------------------
def _makefile_targets_and_variables() -> tuple[set[str], set[str]]:
    text = MAKEFILE.read_text(encoding="utf-8")
    targets, variables = set(), set()
    for line in text.splitlines():
        if line.startswith(("\t", "#")):
            continue
        if m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(\?|:|\+)?=", line):
            variables.add(m.group(1))
        elif m := re.match(r"^([A-Za-z0-9_.\-/$() ]+?)\s*:(?!=)", line):
            targets.update(t for t in m.group(1).split() if "$" not in t)
    return targets - {".PHONY"}, variables


def test_only_project_commands_run():
    for name, argv in all_commands():
        assert argv[0] in ("make", VENV_PYTHON), f"{name}: unexpected command {argv}"


def test_make_targets_exist_in_the_makefile():
    targets, variables = _makefile_targets_and_variables()
    assert {"test", "build", "check"} <= targets
    used = 0
    for name, argv in all_commands():
        if argv[0] != "make":
            continue
        for arg in argv[1:]:
            if "=" in arg:
                assert arg.split("=", 1)[0] in variables, (
                    f"{name}: make variable {arg} is not in the Makefile"
                )
            else:
                assert not arg.startswith("-"), f"{name}: make option {arg}"
                assert arg in targets, f"{name}: make target {arg!r} is not in the Makefile"
                used += 1
    assert used


def test_build_py_arguments_parse(build_module):
    used = 0
    for _name, argv in all_commands():
        if argv[:2] == [VENV_PYTHON, "build.py"]:
            build_module.parse_args(argv[2:])  # argparse exits (fails the test) on a bad option
            used += 1
    assert used


def test_deployer_arguments_parse_with_the_cli_parser():
    if importlib.util.find_spec("karematch_cfn.cli") is None:
        pytest.skip("karematch_cfn/cli.py does not exist yet (the deployer is being written)")
    from karematch_cfn import cli

    assert (helpers.REPO / "karematch_cfn" / "__main__.py").is_file(), (
        "python -m karematch_cfn needs __main__.py"
    )
    parser = cli.build_parser()
    used = 0
    for name, argv in all_commands():
        if argv[:2] == [VENV_PYTHON, "-m"]:
            assert argv[2] == "karematch_cfn", f"{name}: {argv}"
            try:
                args = parser.parse_args(argv[3:])
            except SystemExit:
                pytest.fail(f"{name}: the deployer rejects {shlex.join(argv[3:])}")
            assert args.env in names.ENVIRONMENTS, name
            used += 1
    assert used == 1 + len(names.ENVIRONMENTS)  # one plan, one deploy per environment


def test_dependabot_updates_the_pinned_actions_and_the_python_packages():
    config = yaml.safe_load((helpers.REPO / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"github-actions", "pip"}
    for update in ecosystems.values():
        assert update["directory"] == "/" and update["cooldown"]["default-days"] >= 7


def test_make_test_audits_the_workflows_with_zizmor_pinned_in_the_lock():
    lint = re.search(r"^lint:.*?\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.M).group(1)
    assert re.search(r"zizmor --offline .*\.github/", lint)
    assert re.search(r"^test: .*\blint\b", MAKEFILE.read_text(), re.M)
    assert re.search(r"^zizmor==\d+\.\d+\.\d+$", (helpers.REPO / "constraints.txt").read_text(), re.M)
