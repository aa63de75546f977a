"""Experiment kinds: one module per kind (base.py says what a kind declares). The registry
(base.Kinds) finds every module here that sets KIND."""
