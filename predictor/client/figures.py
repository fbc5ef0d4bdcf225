"""The figures the server cropped (``figures`` option), as files of the input: the server names a crop by the
page of its request (one page per request here), so each is renamed ``{page}_{i}.jpg`` for its page in the input
(0-based, as DeepSeek's PDF script names them) and the text's links are pointed at ``STEM_images/`` beside the
Markdown file."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote

from predictor.client.protocol import PageResult, ProtocolError

_NAME = re.compile(r"^\d+_(\d+)\.jpg$")


def relocate(result: PageResult, page_index: int, folder: str) -> list[tuple[str, bytes]]:
    """Rename ``result``'s crops for page ``page_index`` (0-based) of the input, link them from the text as
    ``folder/{name}`` and return the files to write: (name, JPEG bytes)."""
    files = []
    for figure in result.figures:
        name = figure.get("name") if isinstance(figure, dict) else None
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None:
            raise ProtocolError(f"a figure without a name like 0_0.jpg: {str(name)[:40]!r}")
        try:
            data = base64.b64decode(figure.get("data") or "", validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise ProtocolError(f"figure {name}: its data is not base64") from exc
        new = f"{page_index}_{match.group(1)}.jpg"
        result.text = result.text.replace(f"![](images/{name})", f"![]({quote(folder)}/{new})")
        figure.update(name=new, file=f"{folder}/{new}")
        files.append((new, data))
    return files
