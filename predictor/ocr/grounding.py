"""DeepSeek-OCR grounding output: parse ``<|ref|>LABEL<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>`` groups into
blocks with pixel boxes, clean the text for clients (also while streaming), and draw the boxes on the page.

A block is one well-formed group plus the text that follows it up to the next block. Coordinates are integers on
a 0-999 scale of the original image (pixel = v / 999 * width or height).

Rules (shared by :func:`parse` and :class:`StreamCleaner`, which run the same scanner and text normaliser, so the
streamed deltas always add up to ``parse(raw).text``):

- a group with parseable boxes becomes a block and disappears from the text (or leaves what ``group_text`` says:
  a figure's link or placeholder);
- ``<|ref|>LABEL<|/ref|>`` not followed by ``<|det|>`` (the ``locate`` prompt's wording, echoed) keeps ``LABEL`` as
  plain text, drops its tags and makes no block: there is nothing to draw, and the label is real text;
- anything malformed (unclosed tags, unparseable coordinates, over-long label or coordinates, stray closing tags)
  stays in the text exactly as generated and makes no block; ``<|grounding|>`` is always removed;
- the text is stripped, and runs of three or more newlines (left where groups were removed) become one blank line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw, ImageFont

REF, REF_END, DET, DET_END, GROUNDING = "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>"
TAG_START = "<|"
COORD_MAX = 999
# Bounds after which an open <|ref|> / <|det|> counts as malformed. They keep a broken tag early in a long page
# from holding back all streamed text until the end; real labels and box lists are far shorter.
MAX_LABEL_CHARS = 2000
MAX_DET_CHARS = 8000
RENDER_MAX_SIDE = 2000

_NUM = r"[-+]?\d+(?:\.\d+)?"
_BOX = rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]"
_BOXES_RE = re.compile(rf"\s*\[\s*{_BOX}(?:\s*,\s*{_BOX})*\s*,?\s*\]\s*|\s*{_BOX}\s*")
_NUM_RE = re.compile(_NUM)
_WS_SPLIT = re.compile(r"(\s+)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@dataclass
class Block:
    label: str
    text: str
    boxes: list[list[int]]  # [x1, y1, x2, y2] on the 0-999 scale, clipped, x1 <= x2 and y1 <= y2
    boxes_px: list[list[int]]  # the same boxes in pixels of the original image

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Parsed:
    text: str
    blocks: list[Block]


@dataclass
class _Group:
    end: int  # index in the raw text just after the group
    label: str
    boxes: list[list[int]] | None  # None: a ref without det, whose label stays as text
    inverted: tuple[bool, ...] = ()  # per box: the model wrote it with x2 < x1 or y2 < y1


# What a group with boxes leaves in the clean text: (label, boxes, inverted) -> text ("" by default). The figure
# namer (predictor.ocr.figures) puts a link or a placeholder where an image was.
GroupText = Callable[[str, list[list[int]], tuple[bool, ...]], str]


_MORE = "more"  # the raw text ends inside a group: wait for more
_BAD = "bad"  # malformed: the opening tag is plain text


def _parse_boxes(text: str) -> list[list[int]] | None:
    """``[[x1, y1, x2, y2], ...]`` (or one bare box) -> clipped, ordered 0-999 boxes; None when unparseable."""
    if len(text) > MAX_DET_CHARS or not _BOXES_RE.fullmatch(text):
        return None
    values = [min(COORD_MAX, max(0, round(float(v)))) for v in _NUM_RE.findall(text)]
    boxes = []
    for i in range(0, len(values), 4):
        x1, y1, x2, y2 = values[i:i + 4]
        boxes.append([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)])
    return boxes


def _to_pixels(box: list[int], width: int, height: int) -> list[int]:
    x1, y1, x2, y2 = box
    sx, sy = width / COORD_MAX, height / COORD_MAX
    return [min(width, round(x1 * sx)), min(height, round(y1 * sy)), min(width, round(x2 * sx)),
            min(height, round(y2 * sy))]


def _tag_at(raw: str, at: int, tag: str, final: bool) -> bool | None:
    """Whether ``tag`` starts at ``at``; None while the text ends inside what may still become it."""
    if raw.startswith(tag, at):
        return True
    if not final and len(raw) - at < len(tag) and tag.startswith(raw[at:]):
        return None
    return False


def _find_close(raw: str, start: int, tag: str, limit: int, final: bool) -> int | str:
    """Index of the closing ``tag`` expected at the first ``<|`` after ``start``; or _MORE / _BAD."""
    # The enclosed text may be at most ``limit`` characters: the "<|" may start at start + limit at the latest.
    at = raw.find(TAG_START, start, start + limit + len(TAG_START))
    if at < 0:
        return _BAD if final or len(raw) >= start + limit + len(TAG_START) else _MORE
    found = _tag_at(raw, at, tag, final)
    return _MORE if found is None else at if found else _BAD


def _read_group(raw: str, start: int, final: bool) -> _Group | str:
    """Read the group whose ``<|ref|>`` is at ``start``. Decisions only depend on text up to the first ``<|``
    after each opening tag, so once made they hold for any continuation (which is what streaming relies on)."""
    label_start = start + len(REF)
    close = _find_close(raw, label_start, REF_END, MAX_LABEL_CHARS, final)
    if isinstance(close, str):
        return close
    label = raw[label_start:close]
    det = close + len(REF_END)
    has_det = _tag_at(raw, det, DET, final)
    if has_det is None:
        return _MORE
    if not has_det:
        return _Group(det, label, None)
    coords = det + len(DET)
    det_close = _find_close(raw, coords, DET_END, MAX_DET_CHARS, final)
    if isinstance(det_close, str):
        return det_close
    boxes = _parse_boxes(raw[coords:det_close])
    if boxes is None:
        return _BAD
    values = [float(v) for v in _NUM_RE.findall(raw[coords:det_close])]
    inverted = tuple(values[i + 2] < values[i] or values[i + 3] < values[i + 1] for i in range(0, len(values), 4))
    return _Group(det_close + len(DET_END), label, boxes, inverted)


class _Scanner:
    """Left-to-right split of raw output into text pieces and groups; resumable as the raw text grows."""

    def __init__(self) -> None:
        self.pos = 0

    def scan(self, raw: str, final: bool) -> list[str | _Group]:
        out: list[str | _Group] = []
        while True:
            at = raw.find(TAG_START, self.pos)
            if at < 0:
                # A trailing "<" may be the start of a tag: hold it until the next call.
                end = len(raw) - 1 if not final and raw.endswith("<") else len(raw)
                if end > self.pos:
                    out.append(raw[self.pos:end])
                    self.pos = end
                return out
            if at > self.pos:
                out.append(raw[self.pos:at])
                self.pos = at
            is_grounding, is_ref = _tag_at(raw, at, GROUNDING, final), _tag_at(raw, at, REF, final)
            if is_grounding:
                self.pos += len(GROUNDING)
            elif is_ref:
                group = _read_group(raw, at, final)
                if group == _MORE:
                    return out
                if isinstance(group, _Group):
                    out.append(group)
                    self.pos = group.end
                else:
                    out.append(REF)
                    self.pos += len(REF)
            elif is_grounding is None or is_ref is None:
                return out
            else:
                out.append(TAG_START)
                self.pos += len(TAG_START)


class _Normaliser:
    """Incremental strip + newline collapse: whitespace is held until the next visible character shows it is
    not trailing, so the output only ever grows and never needs to be taken back."""

    def __init__(self) -> None:
        self.started = False
        self.pending = ""

    def push(self, text: str) -> str:
        out: list[str] = []
        for chunk in _WS_SPLIT.split(text):
            if not chunk:
                continue
            if chunk.isspace():
                if self.started:
                    self.pending += chunk
                continue
            if self.pending:
                out.append(_MANY_NEWLINES.sub("\n\n", self.pending))
                self.pending = ""
            out.append(chunk)
            self.started = True
        return "".join(out)


def _piece_text(piece: str | _Group, group_text: GroupText | None = None) -> str:
    if isinstance(piece, str):
        return piece
    if piece.boxes is None:
        return piece.label
    return group_text(piece.label.strip(), piece.boxes, piece.inverted) if group_text is not None else ""


def _normalise(text: str) -> str:
    return _Normaliser().push(text)


def parse(raw: str, width: int, height: int, group_text: GroupText | None = None) -> Parsed:
    """Split raw model output (special tokens kept) into clean text and blocks with boxes. Never raises on
    malformed output: what cannot be parsed stays in the text. ``group_text`` says what a group leaves in the
    text (called once per group, in order)."""
    norm = _Normaliser()
    text: list[str] = []
    blocks: list[tuple[_Group, list[str]]] = []
    for piece in _Scanner().scan(raw, final=True):
        if isinstance(piece, _Group) and piece.boxes is not None:
            blocks.append((piece, []))
            text.append(norm.push(_piece_text(piece, group_text)))
            continue
        chunk = _piece_text(piece)
        text.append(norm.push(chunk))
        if blocks:
            blocks[-1][1].append(chunk)
    return Parsed(
        text="".join(text),
        blocks=[Block(label=g.label.strip(), text=_normalise("".join(parts)), boxes=g.boxes or [],
                      boxes_px=[_to_pixels(b, width, height) for b in g.boxes or []]) for g, parts in blocks],
    )


class StreamCleaner:
    """Clean text deltas for streaming. Text of a group that is not complete yet (or of a trailing partial tag
    such as ``<|re``) is held back, so deltas are never retracted and together equal ``parse(raw).text``."""

    def __init__(self, group_text: GroupText | None = None) -> None:
        self._scanner = _Scanner()
        self._norm = _Normaliser()
        self._seen = ""
        self._emitted: list[str] = []
        self._group_text = group_text

    def _push(self, pieces: list[str | _Group]) -> str:
        delta = "".join(self._norm.push(_piece_text(p, self._group_text)) for p in pieces)
        if delta:
            self._emitted.append(delta)
        return delta

    def feed(self, raw_so_far: str) -> str:
        """``raw_so_far``: all raw text generated so far. Returns the clean text that is safe to emit now."""
        self._seen = raw_so_far
        return self._push(self._scanner.scan(raw_so_far, final=False))

    def finish(self, raw: str) -> str:
        """``raw``: the complete raw output. Returns the rest of the clean text."""
        if raw.startswith(self._seen):
            return self._push(self._scanner.scan(raw, final=True))
        # The final text is not a continuation of what was fed (should not happen): send what is missing if
        # the emitted text is still a prefix of the final clean text; nothing can be taken back otherwise.
        emitted, final = "".join(self._emitted), parse(raw, 1, 1).text
        return final[len(emitted):] if final.startswith(emitted) else ""


# ---- drawing ---------------------------------------------------------------------------------------------------

_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128)]


def render(image: Image.Image, blocks: list[Block]) -> bytes:
    """PNG (RGB) of the page with every block's boxes and label drawn, longest side at most 2000 px."""
    page = image.convert("RGB")
    scale = min(1.0, RENDER_MAX_SIDE / max(page.width, page.height, 1))
    if scale < 1.0:
        page = page.resize((max(1, round(page.width * scale)), max(1, round(page.height * scale))),
                           Image.Resampling.LANCZOS)
    sx, sy = page.width / COORD_MAX, page.height / COORD_MAX
    overlay = Image.new("RGBA", page.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(12, max(page.size) // 70))
    line = max(2, max(page.size) // 500)
    colours: dict[str, tuple[int, int, int]] = {}
    for block in blocks:
        colour = colours.setdefault(block.label, _PALETTE[len(colours) % len(_PALETTE)])
        for x1, y1, x2, y2 in block.boxes:
            box = (round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))
            # A light fill makes small boxes visible; the outline marks the exact edge.
            draw.rectangle(box, fill=(*colour, 48), outline=(*colour, 255), width=line)
            if block.label:
                left, top, right, bottom = draw.textbbox((0, 0), block.label, font=font)
                x, y = box[0], max(0, box[1] - (bottom - top) - 2 * line)
                draw.rectangle((x, y, x + right - left + 2 * line, y + bottom - top + 2 * line), fill=(*colour, 220))
                draw.text((x + line - left, y + line - top), block.label, fill=(255, 255, 255, 255), font=font)
    page = Image.alpha_composite(page.convert("RGBA"), overlay).convert("RGB")
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()
