"""build.py: bad input gets one clear line (file, key, what is allowed), exit 2, nothing
written; --check finds and names differences without writing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from karematch_cfn import render, tree

TEMPLATES = tree.TEMPLATES_DIR


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.glob("*")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _set(path: Path, key: str, value) -> None:
    entries = json.loads(path.read_text())
    for e in entries:
        if e["ParameterKey"] == key:
            e["ParameterValue"] = value
            break
    else:
        entries.append({"ParameterKey": key, "ParameterValue": value})
    path.write_text(json.dumps(entries))


def _run(build_module, capsys, *args):
    rc = build_module.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


BAD_INPUT = {
    "malformed": (
        lambda p: (p / "prod.json").write_text('[{"ParameterKey": "EnvironmentName",'),
        ["prod.json", "not valid JSON", "ParameterKey"],
    ),
    "not a list": (
        lambda p: (p / "prod.json").write_text('{"EnvironmentName": "prod"}'),
        ["prod.json", "expected a JSON list"],
    ),
    "unknown key": (
        lambda p: _set(p / "dev.json", "DbSize", "big"),
        ["dev.json", "DbSize", "unknown parameter", "allowed keys", "EnvironmentName"],
    ),
    "missing required": (
        lambda p: (p / "staging.json").write_text(
            json.dumps([{"ParameterKey": "LogRetentionDays", "ParameterValue": "90"}])
        ),
        ["staging.json", "EnvironmentName", "missing"],
    ),
    "value not allowed": (
        lambda p: _set(p / "prod.json", "LogRetentionDays", "31"),
        ["prod.json", "LogRetentionDays", "'31'", "allowed values", "2192"],
    ),
    "environment mismatch": (
        lambda p: _set(p / "dev.json", "EnvironmentName", "prod"),
        ["dev.json", "EnvironmentName", "'prod'", "'dev'"],
    ),
    "number not a string": (
        lambda p: _set(p / "dev.json", "LogRetentionDays", 30),
        ["dev.json", "LogRetentionDays", "JSON string"],
    ),
    "not utf-8": (
        lambda p: (p / "prod.json").write_bytes(b'[{"ParameterKey": "Environment\xe9"}]'),
        ["prod.json", "not UTF-8"],
    ),
    "unknown environment file": (
        lambda p: (p / "qa.json").write_text("[]"),
        ["qa.json", "unknown environment", "dev.json"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_parameter_file_is_one_line_exit_2_and_nothing_written(
    case, build_module, capsys, parameters_copy, tmp_path
):
    breaker, expected = BAD_INPUT[case]
    breaker(parameters_copy)
    before = _digest(TEMPLATES)
    out_dir = tmp_path / "out"
    rc, _out, err = _run(
        build_module, capsys, "--parameters", str(parameters_copy), "--out", str(out_dir), "--no-lint"
    )
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert not out_dir.exists()
    # and with the default output directory, templates/ is untouched
    rc, _out, _err = _run(build_module, capsys, "--parameters", str(parameters_copy), "--no-lint")
    assert rc == 2
    assert _digest(TEMPLATES) == before


def test_check_names_changed_missing_and_stale_files_and_writes_nothing(build_module, capsys, tmp_path):
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    root = copy / tree.ROOT_FILE
    root.write_text(root.read_text().replace("Delete", "Retain", 1))
    victim = sorted(p for p in copy.glob("*.yaml") if p.name != tree.ROOT_FILE)[0]
    victim.unlink()
    (copy / "old.yaml").write_text("Resources: {}\n")
    before = _digest(copy)
    rc, _out, err = _run(build_module, capsys, "--check", "--no-lint", "--out", str(copy))
    assert rc == 1
    assert f"{tree.ROOT_FILE}: differs" in err
    assert f"{victim.name}: missing" in err
    assert "old.yaml: not rendered by the code" in err
    assert _digest(copy) == before


def test_check_passes_on_the_committed_templates(build_module, capsys):
    rc, out, err = _run(build_module, capsys, "--check", "--no-lint")
    assert rc == 0, err
    assert "up to date" in out


def test_build_writes_the_tree_and_prints_the_size_table(build_module, capsys, tmp_path):
    out_dir = tmp_path / "out"
    rc, out, err = _run(build_module, capsys, "--no-lint", "--out", str(out_dir))
    assert rc == 0, err
    assert sorted(p.name for p in out_dir.glob("*.yaml")) == sorted(tree.render_all())
    assert "template" in out and "headroom" in out and tree.ROOT_FILE in out


def test_lint_findings_exit_1_and_write_nothing(build_module, capsys, tmp_path, monkeypatch):
    # A real template with a real problem (a log group without policies) added to the real tree.
    texts, data = tree.render_tree()
    broken = "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Logs:\n    Type: AWS::Logs::LogGroup\n"
    monkeypatch.setattr(
        tree,
        "render_tree",
        lambda: ({**texts, "broken.yaml": broken}, {**data, "broken.yaml": render.load(broken)}),
    )
    out_dir = tmp_path / "out"
    rc, _out, err = _run(build_module, capsys, "--out", str(out_dir))
    assert rc == 1
    assert "broken.yaml" in err and "I3011" in err and "E9101" in err
    assert not out_dir.exists()


def test_help_documents_every_option(build_module, capsys):
    with pytest.raises(SystemExit) as exc:
        build_module.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--check", "--no-lint", "--no-cache", "--out", "--parameters", "--quiet", "exit codes"):
        assert option in text


@pytest.mark.parametrize("below", [False, True])
def test_an_out_that_cannot_be_written_fails_first_with_one_line(
    build_module, capsys, tmp_path, monkeypatch, below
):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    rendered = []
    monkeypatch.setattr(tree, "render_tree", lambda: rendered.append(1) or ({}, {}))  # must not be reached
    out = a_file / "templates" if below else a_file

    rc, _out, err = _run(build_module, capsys, "--out", str(out))

    assert rc == 2
    assert err.strip() == f"error: --out {out}: " + (
        f"cannot be created: {a_file} is not a directory" if below else "exists and is not a directory"
    )
    assert rendered == []  # refused before the render and the lint
    assert a_file.read_text() == ""


def test_ctrl_c_is_one_line_and_exit_130(build_module, capsys, tmp_path, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(tree, "render_tree", interrupted)

    rc, _out, err = _run(build_module, capsys, "--out", str(tmp_path / "out"))

    assert rc == 130
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: interrupted")
    assert "Traceback" not in err
