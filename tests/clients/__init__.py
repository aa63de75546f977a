"""Tests that run the real clients (Jekyll, Chromium with MathJax and axe-core, the Nu checker)."""
