"""An explanation draws itself in Jupyter: `_repr_html_` is the page, whole, in an iframe's srcdoc."""

import html
import json
import re

from lstmkit.explain.page import Explanation, render_html


def test_repr_html_is_the_page_in_an_iframe():
    e = Explanation({"label": "pos", "probability": 0.9, "text": 'a "quoted" <b>word</b> & more'})
    out = e._repr_html_()
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" style="[^"]*" sandbox="allow-scripts"></iframe>', out)
    assert match, out[:200]
    assert html.unescape(match.group(1)) == render_html(e)  # nothing lost in the attribute
    assert json.dumps(e) == json.dumps(dict(e)) and e == dict(e)  # still a plain dict otherwise
