"""The playground page at ``/ui``: static files shipped in the package (no CDN, no build step) and a small JSON
of the server's limits and options, so the page checks a file before uploading it and offers only what the
server accepts. The page calls the public APIs like any client; nothing here is on their request path."""

from predictor.ui.routes import register

__all__ = ["register"]
