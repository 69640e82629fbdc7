"""Shared fixtures for the template tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from karematch_cfn import lintcache, tree

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def scratch_cache(tmp_path_factory):
    """Lint verdicts and build records go to a scratch cache for the session, never the user's."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get(lintcache.ENV_VAR)
    os.environ[lintcache.ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(lintcache.ENV_VAR, None)
    else:
        os.environ[lintcache.ENV_VAR] = old


@pytest.fixture(scope="session")
def rendered_tree(tmp_path_factory) -> Path:
    """A fresh render of every template, written to a scratch directory laid out like
    templates/ (so cfn-lint can follow the relative TemplateURLs)."""
    out = tmp_path_factory.mktemp("rendered")
    tree.write(tree.render_all(), out)
    return out


@pytest.fixture(scope="session")
def build_module():
    """build.py imported as a module (it is a script at the repo root)."""
    spec = importlib.util.spec_from_file_location("karematch_build", REPO / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["karematch_build"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def parameters_copy(tmp_path) -> Path:
    """A writable copy of parameters/ to break on purpose."""
    dest = tmp_path / "parameters"
    shutil.copytree(REPO / "parameters", dest)
    return dest
