"""Test and benchmark support: the one wrapper that runs the project's programs as processes."""
