"""Output formats: one module per format (base.py says what a format declares); the HTML site
and the Jekyll tree. Each writes one folder of site/."""
