"""Markdown options on their own: tables that can and cannot be pipe tables, math delimiters, the colon rewrites,
streams that add up."""

from __future__ import annotations

import random

import pytest

from predictor.ocr.markdown import MarkdownOptions, convert, dollar_math, table_rows, text_stream

TABLES = MarkdownOptions(table_format="markdown")


@pytest.mark.parametrize(("html", "table"), [
    ("<table><thead><tr><th>A</th><th>B</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>",
     "| A | B |\n| --- | --- |\n| 1 | 2 |"),
    ('<TABLE border="1"><TR><TD>x|y</TD><TD>line\none</TD></TR></TABLE>', "| x\\|y | line<br>one |\n| --- | --- |"),
    ("<table><tr><td><b>bold</b></td><td></td></tr></table>", "| <b>bold</b> |  |\n| --- | --- |"),
    ('<table><tr><td colspan="1">a</td></tr></table>', "| a |\n| --- |"),  # a span of 1 is no span
])
def test_rectangular_tables_become_pipe_tables(html, table):
    assert convert(html, TABLES).text == table


@pytest.mark.parametrize(("html", "reason"), [
    ('<table><tr><td rowspan="2">a</td><td>b</td></tr><tr><td>c</td></tr></table>', "rowspan/colspan"),
    ("<table><tr><td colspan=3>a</td></tr></table>", "rowspan/colspan"),
    ("<table><tr><td>a</td></tr><tr><td>b</td><td>c</td></tr></table>", "rows of different lengths"),
    ("<table><tr><td><table><tr><td>in</td></tr></table></td></tr></table>", "nested table"),
    ("<table><caption>T</caption><tr><td>a</td></tr></table>", "text outside cells"),
    ("<table><tr><td>a</td></tr><tr><td>unclosed</table>", "unclosed cell or text outside cells"),
    ("<table></table>", "no cells"),
])
def test_other_tables_stay_html_and_say_why(html, reason):
    converted = convert(f"before {html} after", TABLES)
    assert converted.text == f"before {html} after" and converted.tables_kept_html == [reason]
    assert table_rows(html)[0] is None


def test_math_delimiters():
    assert dollar_math("a \\(x\\) b \\[ y \\] c") == "a $x$ b $$y$$ c"
    assert dollar_math("\\( \\)") == "\\( \\)"  # empty: "$$" would open display math
    assert dollar_math("\\\\(x\\\\)") == "\\\\(x\\\\)"  # \\\\ is a line break, not an escape of the bracket
    assert dollar_math("\\[ a \\] \\( b") == "$$a$$ \\( b"  # the unclosed one stays


def test_colon_rewrites_apply_whatever_the_options():
    for options in (MarkdownOptions(), MarkdownOptions("dollar", "markdown")):
        assert convert("\\(a \\coloneqq b\\), b \\eqqcolon a", options).text.count(":=") == 1


@pytest.mark.parametrize("options", [MarkdownOptions(), TABLES, MarkdownOptions("dollar", "markdown")])
def test_streams_add_up_to_the_converted_text(options):
    text = ("Intro \\(a \\coloneqq b\\)  \n\n<table><tr><td>x</td></tr></table>\n\n\n"
            "\\[ y \\eqqcolon 1 \\]\n\ntrailing \\coloneq \\")
    rng = random.Random(1)
    for _ in range(50):
        stream, out, at = text_stream(options), "", 0
        while at < len(text):
            step = rng.randint(1, 7)
            out += stream.push(text[at:at + step])
            at += step
        assert out + stream.finish() == convert(text, options).text
