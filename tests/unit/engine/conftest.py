from __future__ import annotations

import pytest


@pytest.fixture
def family(tiny_v2_family):
    """The session's loaded tiny family (tests/conftest.py); test_experts.py overrides it with a fresh one."""
    return tiny_v2_family
