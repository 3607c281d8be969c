"""The explain page: one self-contained HTML file (page.html with the explanation's JSON inlined)."""

from __future__ import annotations

import html as html_lib
import json
from importlib import resources

from lstmkit.atomic import write_bytes

TEMPLATE = "page.html"


def render_html(explanation):
    """The self-contained page (inline CSS, JS and data; nothing fetched) as a string."""
    template = resources.files("lstmkit.explain").joinpath(TEMPLATE).read_text(encoding="utf-8")
    # Inside <script type="application/json"> only "</" could end the element: escape every "<".
    data = json.dumps(explanation, ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    data = data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    title = html_lib.escape(f"lstmkit explain: {explanation['label']} ({explanation['probability']:.3f})")
    return template.replace("__TITLE__", title).replace("__DATA__", data)


class Explanation(dict):
    """An explanation (the dict `explain` returns) that draws itself in Jupyter: its page, inline.

    It is a plain dict otherwise (json.dumps, indexing, equality). Jupyter calls `_repr_html_`
    and shows the self-contained page in an iframe, so its script and styles stay its own.
    """

    def _repr_html_(self):
        page = html_lib.escape(render_html(self), quote=True)
        return (
            f'<iframe srcdoc="{page}" style="width: 100%; height: 900px; border: 0" sandbox="allow-scripts"></iframe>'
        )


def save_html(explanation, path):
    """Write the page; returns the path."""
    return write_bytes(path, render_html(explanation).encode("utf-8"))
