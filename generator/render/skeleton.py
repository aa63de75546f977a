"""Post bodies as skeletons: a body's tags with ``{{ TEXT_NAME[i] }}`` where its runs of text
were, so a prose edit leaves the compiled code as it was (render/jinja.py keeps it); and the
patching of a prose edit into the last skeleton, so it is not even lexed again.
"""
from __future__ import annotations

from dataclasses import dataclass

import jinja2

# The name under which a skeleton reads its text; a body that uses it is compiled whole.
TEXT_NAME = "__lora_site_text__"


@dataclass(frozen=True)
class Skeleton:
    """A template split by split_text: ``source`` renders, with ``TEXT_NAME=texts``, exactly as
    the original does; ``lines[i]`` is the original line of the skeleton's line i + 1.
    ``spans[i]`` is where texts[i] stands in the original (None when it could not be placed),
    ``marks[i]`` how many entries ``lines`` had when texts[i] was met (for edit_text)."""
    source: str
    texts: list[str]
    lines: list[int]
    spans: list[tuple[int, int]] | None = None
    marks: list[int] | None = None

    def original_line(self, line: int | None) -> int | None:
        if line is None or not 1 <= line <= len(self.lines):
            return None
        return self.lines[line - 1]


def split_text(env: jinja2.Environment, source: str) -> Skeleton:
    """Split a template into its tags and its plain text: the skeleton keeps every tag and
    comment as written and puts ``{{ TEXT_NAME[i] }}`` where the i-th run of text was.

    Why: compiling a post body costs more than the rest of a prose-edit rebuild, and a prose
    edit changes only the text. The skeleton stays the same, so its compiled code is reused
    from the bytecode cache. The texts come from Jinja's own lexer, after it has applied
    trim_blocks, lstrip_blocks and the - markers, so whitespace control is untouched.

    The skeleton has no line breaks of its own, so adding or removing lines of prose leaves it
    unchanged too; a tag that starts on a new line of the original starts a new line of the
    skeleton (after an empty comment), and ``lines`` maps each skeleton line back, so errors
    still name the post's line.
    """
    parts: list[str] = []
    texts: list[str] = []
    lines = [1]                 # the original line of each skeleton line so far
    spans: list[tuple[int, int]] | None = []
    marks: list[int] = []
    at = 0                      # where the next token starts in the source, give or take
    for lineno, kind, value in env.lex(source):
        # Each token's text stands in the source in order; only whitespace that whitespace
        # control removed lies between them.
        if spans is not None:
            start = at
            while not source.startswith(value, start) and start < len(source) \
                    and source[start] in " \t\n":
                start += 1
            if source.startswith(value, start):
                at = start + len(value)
            else:
                spans = None
        if kind in ("raw_begin", "raw_end"):
            continue            # the raw block's content is a text now
        if kind == "data":
            parts.append(f"{{{{ {TEXT_NAME}[{len(texts)}] }}}}")
            texts.append(value)
            marks.append(len(lines))
            if spans is not None:
                spans.append((at - len(value), at))
            continue
        if lineno != lines[-1]:
            parts.append("{#\n#}")
            lines.append(lineno)
        parts.append(value)
        # A tag that spans lines spans as many in both.
        lines.extend(range(lineno + 1, lineno + 1 + value.count("\n")))
    return Skeleton("".join(parts), texts, lines, spans, marks)


_TAG_STARTS = ("{{", "{%", "{#")


def edit_text(skeleton: Skeleton, old: str, new: str) -> Skeleton | None:
    """The skeleton of ``new`` made from that of ``old`` without lexing it again, when the edit
    is prose inside one run of text; None otherwise (then split_text does it).

    Safe only where whitespace control cannot tell the difference (trim_blocks, lstrip_blocks
    and the - markers only ever act at the edges of a run): the edit must leave the run's first
    character as it was (unless the run opens the template), and its last line too when a
    block or a comment comes next; and neither run may hold the start of a tag. Lines added or
    removed move the line map of every tag after the run, never the skeleton itself (a line
    break is added or removed only where another one stays after it, so the tag after the run
    keeps a line of its own)."""
    if skeleton.spans is None or skeleton.marks is None or old == new:
        return None
    p = 0
    limit = min(len(old), len(new))
    while p < limit and old[p] == new[p]:
        p += 1
    q = 0
    while q < limit - p and old[-1 - q] == new[-1 - q]:
        q += 1
    a, b, c = p, len(old) - q, len(new) - q          # old[a:b] became new[a:c]
    for i, (start, end) in enumerate(skeleton.spans):
        # At the very start no tag comes before the run, so its first character may change.
        if (start < a or start == 0) and b < end:
            break
    else:
        return None
    if "\n" not in old[b:end]:
        # The run's last line is edited: lstrip_blocks looks at it when a block or a comment
        # comes next, and a line break there would move the next tag to another line.
        if old[end:end + 2] in ("{%", "{#") or "\n" in old[a:b] or "\n" in new[a:c]:
            return None
    text = new[start:end + (c - b)]
    if any(t in text for t in _TAG_STARTS) or any(t in skeleton.texts[i] for t in _TAG_STARTS):
        return None
    shift = c - b
    delta = new[a:c].count("\n") - old[a:b].count("\n")
    texts = list(skeleton.texts)
    texts[i] = text
    mark = skeleton.marks[i]
    lines = skeleton.lines[:mark] + [line + delta for line in skeleton.lines[mark:]]
    spans = skeleton.spans[:i] + [(start, end + shift)] + \
        [(s + shift, e + shift) for s, e in skeleton.spans[i + 1:]]
    return Skeleton(skeleton.source, texts, lines, spans, skeleton.marks)
