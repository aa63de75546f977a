"""Stages: the run and figures stages over every kind (run), their store (the freeze, the
figure cache), the worker processes and verify. Run-time state lives in the build context."""
