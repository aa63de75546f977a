"""The science: attention, LoRA, one training run, its metrics, the batched engine and the
claims audit. Pure computation: nothing here reads or writes a file."""
