"""lora-site: a reproducible-article generator for LoRA attention experiments.

The pipeline, and the package that holds each part (generator/README.md says where each kind
of change goes):

    content/site.yml, content/posts/*.md      authoring/   settings, posts, their experiments
            |
            |  1. run       kinds/ + science/   experiment settings -> result files (bytes)
            |  2. figures   kinds/ + plots/     result files        -> PNG bytes
            |     (stages/: the freeze, caches, worker processes, verify)
            |  3. render    render/ + outputs/  posts + results + figures -> pages (strings)
            |  4. write     publish/            the one place that writes site/, atomically
            v
    site/html/, site/jekyll/                  one folder per output format

Dependencies point down LAYERS and never up (tests/test_layers.py checks every import,
imports inside functions included); serve/ and cli/ sit on top.
"""

__version__ = "0.1.0"

# Lowest first: a module may import from its own package and the packages before it.
LAYERS = ("core", "science", "plots", "kinds", "stages", "authoring", "render", "outputs",
          "publish", "serve", "cli")
