"""Plots: every figure drawn from saved results (matplotlib, imported lazily; never torch)."""
