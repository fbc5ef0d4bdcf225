"""Clean text that users can use as Markdown as is: DeepSeek's ``\\coloneqq``/``\\eqqcolon`` rewrites (always, as its
PDF script does), ``math: "dollar"`` (``\\( \\)`` -> ``$ $``, ``\\[ \\]`` -> ``$$ $$``) and ``table_format:
"markdown"`` (each rectangular HTML table -> a GFM pipe table; a table with rowspan/colspan stays HTML, reported).

Every rule works inside one paragraph (text between blank lines): the model writes each table and equation on one
line, and a stream can then be converted paragraph by paragraph as the paragraphs complete, giving exactly the
text that converting the whole page gives (``ParagraphStream``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLON_REWRITES = (("\\coloneqq", ":="), ("\\eqqcolon", "=:"))
PARAGRAPH = "\n\n"
_TABLE = re.compile(r"<table\b[^>]*>.*?</table\s*>", re.IGNORECASE | re.DOTALL)
_TABLE_TAG = re.compile(r"<(/?)(table|thead|tbody|tfoot|tr|td|th)\b([^>]*)>", re.IGNORECASE)
_SPAN = re.compile(r"\b(?:rowspan|colspan)\s*=\s*[\"']?\s*0*(\d+)", re.IGNORECASE)
_MATH = {"(": (")", "$"), "[": ("]", "$$")}  # opening bracket -> closing bracket, Markdown delimiter


@dataclass(frozen=True)
class MarkdownOptions:
    math: str = "latex"  # "latex": the model's delimiters; "dollar": $ and $$
    table_format: str = "html"  # "html": as the model writes it; "markdown": GFM pipe tables where possible


@dataclass
class Converted:
    text: str
    tables_kept_html: list[str] = field(default_factory=list)  # why each table left as HTML stayed so


def convert(text: str, options: MarkdownOptions) -> Converted:
    """The whole clean text of a page (or a block), paragraph by paragraph."""
    notes: list[str] = []
    parts = []
    for paragraph in text.split(PARAGRAPH):
        done = convert_paragraph(paragraph, options)
        parts.append(done.text)
        notes += done.tables_kept_html
    return Converted(PARAGRAPH.join(parts), notes)


def convert_paragraph(text: str, options: MarkdownOptions) -> Converted:
    for old, new in COLON_REWRITES:
        text = text.replace(old, new)
    notes: list[str] = []
    if options.table_format == "markdown" and "<table" in text.lower():
        text = _TABLE.sub(lambda m: _table_or_note(m.group(0), notes), text)
    if options.math == "dollar":
        text = dollar_math(text)
    return Converted(text, notes)


class ParagraphStream:
    """Converts streamed clean text as paragraphs complete; what it returns adds up to ``convert(all).text``."""

    def __init__(self, options: MarkdownOptions):
        self.options = options
        self.pending = ""

    def push(self, delta: str) -> str:
        self.pending += delta
        *complete, self.pending = self.pending.split(PARAGRAPH)
        return "".join(convert_paragraph(p, self.options).text + PARAGRAPH for p in complete)

    def finish(self) -> str:
        rest, self.pending = self.pending, ""
        return convert_paragraph(rest, self.options).text


class RewriteStream:
    """The default options' stream: only the colon rewrites apply, so text is held back only while it ends in what
    may still become ``\\coloneqq`` or ``\\eqqcolon`` (streaming stays token by token)."""

    def __init__(self) -> None:
        self.pending = ""

    def push(self, delta: str) -> str:
        text = self.pending + delta
        cut = text.rfind("\\")
        tail = text[cut:] if cut >= 0 else ""
        if tail and any(old.startswith(tail) and old != tail for old, _ in COLON_REWRITES):
            text, self.pending = text[:cut], tail
        else:
            self.pending = ""
        return convert_paragraph(text, MarkdownOptions()).text

    def finish(self) -> str:
        rest, self.pending = self.pending, ""
        return convert_paragraph(rest, MarkdownOptions()).text


def text_stream(options: MarkdownOptions) -> ParagraphStream | RewriteStream:
    if options == MarkdownOptions():
        return RewriteStream()
    return ParagraphStream(options)


# ---- math -------------------------------------------------------------------------------------------------------


def _opens(text: str, at: int) -> bool:
    """A backslash at ``at`` that is not itself escaped (``\\\\(`` is a line break and a bracket)."""
    run = 0
    while at - run >= 0 and text[at - run] == "\\":
        run += 1
    return run % 2 == 1


def _close(text: str, start: int, bracket: str) -> int:
    """Index of the backslash of the matching ``\\)``/``\\]`` (same-kind pairs nest), or -1."""
    closing, depth, at = _MATH[bracket][0], 1, start
    while True:
        at = text.find("\\", at)
        if at < 0 or at + 1 >= len(text):
            return -1
        if text[at + 1] == bracket:
            depth += 1
        elif text[at + 1] == closing:
            depth -= 1
            if depth == 0:
                return at
        at += 2  # skip the escaped character: "\\\\)" is not a closing delimiter


def dollar_math(text: str) -> str:
    """Outermost ``\\( \\)`` -> ``$..$`` and ``\\[ \\]`` -> ``$$..$$``; delimiters nested inside math stay as they
    are; an unclosed or empty one is left untouched."""
    out, at = [], 0
    while True:
        start = min((i for i in (text.find("\\(", at), text.find("\\[", at)) if i >= 0), default=-1)
        while start >= 0 and not _opens(text, start):
            nxt = [i for i in (text.find("\\(", start + 1), text.find("\\[", start + 1)) if i >= 0]
            start = min(nxt, default=-1)
        if start < 0:
            out.append(text[at:])
            return "".join(out)
        bracket = text[start + 1]
        end = _close(text, start + 2, bracket)
        inner = text[start + 2:end].strip() if end >= 0 else ""
        if end < 0 or not inner:
            out.append(text[at:start + 2])
            at = start + 2
            continue
        dollars = _MATH[bracket][1]
        out.append(f"{text[at:start]}{dollars}{inner}{dollars}")
        at = end + 2


# ---- tables -----------------------------------------------------------------------------------------------------


def _table_or_note(html: str, notes: list[str]) -> str:
    rows, reason = table_rows(html)
    if rows is None:
        notes.append(reason)
        return html
    return pipe_table(rows)


def table_rows(html: str) -> tuple[list[list[str]] | None, str]:
    """The cells of a simple HTML table, row by row; (None, why) for one a pipe table cannot show."""
    body = html[html.index(">") + 1:html.lower().rindex("</table")]
    if "<table" in body.lower():
        return None, "nested table"
    rows: list[list[str]] = []
    cell_start: int | None = None
    at = 0
    for match in _TABLE_TAG.finditer(body):
        closing, tag = match.group(1) == "/", match.group(2).lower()
        if cell_start is not None and (tag in ("td", "th", "tr") or tag in ("thead", "tbody", "tfoot")):
            rows[-1].append(body[cell_start:match.start()])
            cell_start = None
        elif body[at:match.start()].strip():
            return None, "text outside cells"
        at = match.end()
        if _SPAN.search(match.group(3)) and any(int(v) != 1 for v in _SPAN.findall(match.group(3))):
            return None, "rowspan/colspan"
        if tag == "tr" and not closing:
            rows.append([])
        elif tag in ("td", "th") and not closing:
            if not rows:
                rows.append([])  # a cell before any <tr>: HTML opens the row implicitly
            cell_start = match.end()
    if cell_start is not None or body[at:].strip():
        return None, "unclosed cell or text outside cells"
    rows = [row for row in rows if row]
    if not rows:
        return None, "no cells"
    if len({len(row) for row in rows}) != 1:
        return None, "rows of different lengths"
    return rows, ""


def _cell(text: str) -> str:
    text = re.sub(r"\s*\n\s*", "<br>", text.strip())
    return text.replace("|", "\\|")


def pipe_table(rows: list[list[str]]) -> str:
    """GFM: the first row is the header (GFM has no table without one)."""
    lines = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * len(rows[0]))
    return "\n".join(lines)
