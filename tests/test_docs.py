"""The docs say what the code does: README tables, quick start and CI entry point."""

from __future__ import annotations

import re

from karematch_cfn.deploy import errors
from karematch_cfn.stacks import root
from tests import helpers

README = (helpers.REPO / "README.md").read_text()


def test_readme_names_every_template_and_every_root_parameter():
    for filename in helpers.rendered_text():
        assert f"`{filename}`" in README, filename
    for pname in helpers.template(root.ROOT_FILE)["Parameters"]:
        assert f"`{pname}`" in README, pname


def test_readme_exit_code_table_is_the_cli_one():
    assert errors.exit_code_markdown().strip() in README


def test_quick_start_is_two_make_commands_that_exist_and_ci_runs_the_test_one():
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make build", "make test"]
    makefile = (helpers.REPO / "Makefile").read_text()
    for target in ("build", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    ci = (helpers.REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
