"""docs/ARCHITECTURE.md is the spec the tests read; it must equal the shared original."""

from __future__ import annotations

import pytest

from tests import spec


def test_spec_copy_equals_the_shared_spec():
    if not spec.SHARED_SPEC.exists():
        pytest.skip(f"{spec.SHARED_SPEC} not present (only beside the project's workspace)")
    assert spec.SPEC.read_text() == spec.SHARED_SPEC.read_text()


def test_spec_helpers_find_values_and_fail_loudly():
    assert spec.find(r"\*\*VPC\*\*: `([\d./]+)`", "1. Networking") == "10.0.0.0/16"
    with pytest.raises(LookupError):
        spec.find(r"no such (thing)")
