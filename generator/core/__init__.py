"""Foundation: errors, file primitives, the project's paths, hashing, cache keys, the numeric
pins and the build context. Standard library only (click for the error type); imports nothing
above it."""
