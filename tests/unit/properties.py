"""Hypothesis settings shared by the unit layer's property tests.

derandomize: the same examples on every run, so the layer stays deterministic;
database=None: nothing is written to .hypothesis/; deadline=None: no
wall-clock limit per example (a slow CI machine must not fail a test).
"""

from __future__ import annotations

from hypothesis import settings

deterministic = settings(derandomize=True, database=None, deadline=None)
