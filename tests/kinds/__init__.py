"""Experiment kinds defined by the tests, to prove a new kind is one module (site.yml names
them under `kinds:`; tests/ is on the path)."""
