"""templates/ is exactly what the code renders, byte for byte, and rendering is deterministic."""

from __future__ import annotations

from karematch_cfn import render, tree
from karematch_cfn.stacks import root
from tests import helpers


def test_committed_templates_equal_a_fresh_render():
    problems = tree.diff(helpers.rendered_text(), tree.TEMPLATES_DIR)
    assert problems == [], "templates/ is stale; run `python build.py`:\n" + "\n".join(problems)


def test_rendering_twice_gives_identical_bytes():
    first = {name: render.to_yaml(t) for name, t in root.build_all().items()}
    second = {name: render.to_yaml(t) for name, t in root.build_all().items()}
    assert first == second


def test_every_template_is_long_form_yaml_with_the_generated_header():
    for name, text in helpers.rendered_text().items():
        assert text.startswith(render.HEADER), name
        assert "!Sub" not in text and "!Ref" not in text, f"{name}: short-form tags"
