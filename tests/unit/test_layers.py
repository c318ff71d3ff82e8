"""Every test module says which layer it is (README: `-m unit` runs without services):
a module without its marker is left out of its layer's runs (test_wire.py was, once)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]
LAYERS = ("unit", "integration", "faults")


@pytest.mark.parametrize("layer", LAYERS)
def test_every_module_of_a_layer_carries_its_marker(layer):
    marker = re.compile(rf"^pytestmark = .*pytest\.mark\.{layer}\b", re.M)
    modules = sorted((TESTS / layer).glob("test_*.py"))
    assert modules, f"no test modules under tests/{layer}"
    unmarked = [m.name for m in modules if not marker.search(m.read_text())]
    assert unmarked == [], f"tests/{layer} modules without pytest.mark.{layer}: {unmarked}"
