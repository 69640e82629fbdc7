"""The spec helpers find the document's values and fail loudly when a value is missing."""

from __future__ import annotations

import pytest

from tests import spec


def test_spec_helpers_find_values_and_fail_loudly():
    assert spec.find(r"\*\*VPC\*\*: `([\d./]+)`", "1. Networking") == "10.0.0.0/16"
    with pytest.raises(LookupError):
        spec.find(r"no such (thing)")
