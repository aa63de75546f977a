"""Authoring: what an author writes, read and checked: posts (front matter, experiments and
their kinds, the body), the site's settings, and what templates need about each post."""
