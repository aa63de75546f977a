"""Publish: build() as the pipeline, the atomic output tree, the build lock and the no-op
fingerprint."""
