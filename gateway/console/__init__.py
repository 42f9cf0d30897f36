"""The admin console under ``/admin``: server-rendered pages (Jinja2), assets from package data.

Separate routes beside the API (``install``), never on the submission hot path. Pages
work without JavaScript; every state-changing form is a POST that carries the session's
CSRF token (docs/console.md).
"""

from gateway.console.pages import install

__all__ = ["install"]
