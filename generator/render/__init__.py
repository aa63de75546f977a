"""Render: the author's dialect, Markdown with math and code, kramdown for Jekyll, Jinja for
bodies and page templates, what a body sees, and the post render cache. Returns strings;
writes no page."""
