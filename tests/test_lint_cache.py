"""The lint cache: every input of a verdict invalidates it, a hit never imports cfn-lint, a
verdict is shared by build.py and the deployer, --no-cache bypasses it; cfn-lint in parallel
still runs the cross-template check (E3043)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from karematch_cfn import lint, lintcache, tree
from karematch_cfn.deploy import inputs

REPO = Path(__file__).resolve().parent.parent
BROKEN = "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Logs:\n    Type: AWS::Logs::LogGroup\n"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv(lintcache.ENV_VAR, str(path))
    return path


@pytest.fixture
def toolchain(tmp_path) -> lintcache.Toolchain:
    """A toolchain whose files are copies this test may change."""
    data = tmp_path / "cfnlint-data" / "schemas"
    data.mkdir(parents=True)
    (data / "aws-s3-bucket.json").write_text('{"typeName": "AWS::S3::Bucket"}')
    config = tmp_path / ".cfnlintrc.yaml"
    shutil.copy(lint.CONFIG_FILE, config)
    rules = tmp_path / "lintrules"
    shutil.copytree(REPO / "karematch_cfn" / "lintrules", rules, ignore=shutil.ignore_patterns("__pycache__"))
    return lintcache.Toolchain(
        cfnlint_version="1.58.0",
        cfnlint_data=tmp_path / "cfnlint-data",
        config_file=config,
        project_lint_code=(REPO / "karematch_cfn" / "lint.py", rules),
        python_version="3.11.7 (main)",
        today="2026-12-01",
        cfnlint_requirements=("jsonschema==4.26.0",),
    )


GENERATED = {"templates/karematch.yaml": "Resources: {}\n", "docs/resources.md": "# Resources\n"}


def _touch_data(tc):
    p = tc.cfnlint_data / "schemas" / "aws-s3-bucket.json"
    p.write_text(p.read_text().replace("}", ', "readOnlyProperties": []}'))  # --update-specs
    return tc, GENERATED


CHANGES = {
    "a template": lambda tc: (tc, {**GENERATED, "templates/karematch.yaml": "Resources: {X: 1}\n"}),
    "a generated doc": lambda tc: (tc, {**GENERATED, "docs/resources.md": "# Resources (2)\n"}),
    "a new generated file": lambda tc: (tc, {**GENERATED, "templates/network.yaml": "Resources: {}\n"}),
    "cfn-lint's version": lambda tc: (dataclasses.replace(tc, cfnlint_version="1.59.0"), GENERATED),
    "cfn-lint's data files": _touch_data,
    ".cfnlintrc.yaml": lambda tc: (
        tc.config_file.write_text(tc.config_file.read_text() + "  - I3011\n") and tc,
        GENERATED,
    ),
    "a project lint rule": lambda tc: (
        (tc.project_lint_code[1] / "StatefulPolicies.py").write_text(
            (tc.project_lint_code[1] / "StatefulPolicies.py").read_text() + "\n# changed\n"
        )
        and tc,
        GENERATED,
    ),
    "a library cfn-lint requires": lambda tc: (
        dataclasses.replace(tc, cfnlint_requirements=("jsonschema==4.27.0",)),
        GENERATED,
    ),
    "the Python version": lambda tc: (dataclasses.replace(tc, python_version="3.12.1 (main)"), GENERATED),
    "the date": lambda tc: (dataclasses.replace(tc, today="2026-12-02"), GENERATED),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_input_invalidates_the_verdict(change, toolchain, cache):
    before = lintcache.key(GENERATED, toolchain)
    lintcache.store(before, [])
    assert lintcache.lookup(before) == []
    assert lintcache.lookup(lintcache.key(dict(GENERATED), toolchain)) == []  # same inputs: a hit

    changed_toolchain, changed_generated = CHANGES[change](toolchain)

    assert lintcache.lookup(lintcache.key(changed_generated, changed_toolchain)) is None


def test_the_real_toolchain_names_the_real_inputs():
    import cfnlint

    tc = lintcache.Toolchain.current(lint.CONFIG_FILE)
    assert tc.cfnlint_data == Path(cfnlint.__file__).parent / "data"
    assert any(tc.cfnlint_data.rglob("*.json"))
    assert REPO / "karematch_cfn" / "lintrules" in tc.project_lint_code
    assert tc.config_file == REPO / ".cfnlintrc.yaml"
    assert tc.python_version == sys.version
    assert tc.today == datetime.datetime.now(datetime.UTC).date().isoformat()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(lintcache.ENV_VAR, str(tmp_path / "c"))
    assert lintcache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(lintcache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lintcache.cache_dir() == tmp_path / "xdg" / "karematch-cfn"


def _tree(tmp_path: Path, extra: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    out = tmp_path / "tree"
    files = {**tree.render_all(), **(extra or {})}
    tree.write(files, out)
    return out, {f"templates/{k}": v for k, v in files.items()}


def test_a_remembered_verdict_is_replayed_and_no_cache_lints_again(tmp_path, cache):
    out, generated = _tree(tmp_path, {"broken.yaml": BROKEN})
    paths = sorted(out.glob("*.yaml"))

    first, cached = lint.lint_cached(paths, base=out, generated=generated)
    assert not cached
    assert {f.rule for f in first if f.filename.endswith("broken.yaml")} >= {"I3011", "E9101"}

    # The same tree elsewhere: the findings come back with that directory's file names.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out, elsewhere)
    again, cached = lint.lint_cached(sorted(elsewhere.glob("*.yaml")), base=elsewhere, generated=generated)
    assert cached
    assert [(f.rule, f.line, Path(f.filename).name) for f in again] == [
        (f.rule, f.line, Path(f.filename).name) for f in first
    ]
    assert all(f.filename.startswith(str(elsewhere)) for f in again)

    # A wrong verdict planted in the cache is believed with the cache, ignored without it.
    k = lintcache.key(generated, lintcache.Toolchain.current(lint.CONFIG_FILE))
    lintcache.store(k, [])
    assert lint.lint_cached(paths, base=out, generated=generated) == ([], True)
    fresh, cached = lint.lint_cached(paths, base=out, generated=generated, use_cache=False)
    assert not cached and {f.rule for f in fresh} >= {"I3011", "E9101"}


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_then_deploy_lint_shares_the_verdict_without_importing_cfn_lint(tmp_path):
    env = {lintcache.ENV_VAR: str(tmp_path / "cache")}
    out = tmp_path / "templates"
    build = [sys.executable, "build.py", "--out", str(out), "--docs-root", str(tmp_path)]
    first = subprocess.run(build, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "informational rules included" in first.stdout  # really linted

    # The deployer's lint step on what build.py wrote: a hit, and cfn-lint never imported.
    r = _python(
        f"""
        import sys
        from pathlib import Path
        from karematch_cfn import tree
        from karematch_cfn.deploy import inputs
        tree.REPO = Path({str(tmp_path)!r})  # where this build wrote the generated docs
        t = inputs.load_tree(Path({str(out)!r}))
        print(inputs.lint(t, project=True), "cfnlint" in sys.modules)
        """,
        env,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", "False"]

    # build.py again, nothing changed: no rendering, no cfn-lint, not even troposphere.
    again = subprocess.run(
        [sys.executable, "-X", "importtime", *build[1:], "--check"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    imported = {line.split("|")[-1].strip() for line in again.stderr.splitlines() if "|" in line}
    assert "cfnlint" not in imported and "troposphere" not in imported

    # A generated doc edited by hand: no shortcut, --check names it.
    doc = next((tmp_path / "docs").glob("*.md"))
    original = doc.read_text()
    doc.write_text(original + "edited\n")
    stale_doc = subprocess.run(
        [*build, "--check", "--no-lint"], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert stale_doc.returncode == 1
    assert doc.name in stale_doc.stderr
    doc.write_text(original)

    # One template edited by hand: --check renders, finds it and fails.
    (out / "network.yaml").write_text((out / "network.yaml").read_text() + "# edited\n")
    stale = subprocess.run(
        [*build, "--check"], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert stale.returncode == 1
    assert "network.yaml: differs" in stale.stderr


def test_deploy_freshness_uses_the_build_record_and_no_cache_renders(tmp_path, cache, monkeypatch):
    out, _ = _tree(tmp_path)
    digest = lintcache.content_digest(
        {f"templates/{p.name}": p.read_text() for p in sorted(out.glob("*.yaml"))}
    )
    source = lintcache.source_key(sources=inputs.paths.SOURCES, parameters_dir=tree.PARAMETERS_DIR)
    lintcache.store_build(source, outputs=digest, sizes="", docs=[])

    def no_render():
        raise ValueError("rendered")

    monkeypatch.setattr(tree, "render_all", no_render)
    inputs.check_fresh(out)  # the record answers: nothing rendered
    with pytest.raises(inputs.BadInput, match="rendered"):
        inputs.check_fresh(out, use_cache=False)
    (out / "network.yaml").write_text("# edited\n")
    with pytest.raises(inputs.BadInput, match="rendered"):  # the record no longer matches
        inputs.check_fresh(out)


def test_cross_template_check_runs_when_linting_in_parallel(tmp_path):
    child = textwrap.dedent(
        """\
        AWSTemplateFormatVersion: '2010-09-09'
        Parameters:
          Name: {Type: String}
        Resources:
          Topic:
            Type: AWS::SNS::Topic
            Properties: {TopicName: {Ref: Name}}
        """
    )
    root = textwrap.dedent(
        """\
        AWSTemplateFormatVersion: '2010-09-09'
        Resources:
          Child:
            Type: AWS::CloudFormation::Stack
            DeletionPolicy: Delete
            UpdateReplacePolicy: Delete
            Properties:
              TemplateURL: ./child.yaml
              Parameters: {Nmae: x}
        """
    )
    (tmp_path / "root.yaml").write_text(root)
    (tmp_path / "child.yaml").write_text(child + "# padding\n" * 50)  # the larger share
    paths = sorted(tmp_path.glob("*.yaml"))
    for jobs in (1, 2):
        rules = {(Path(f.filename).name, f.rule) for f in lint.lint_files(paths, jobs=jobs)}
        assert ("root.yaml", "E3043") in rules, (jobs, rules)
