"""See inside a trained text classifier: gate traces, a sentiment trajectory, token attributions,
and how far back the decision reaches (the prediction's gradient per token and per cell).

e = explain(model, "A great film.")      # the JSON-able explanation (report.py)
save_html(e, "page.html")                # the self-contained page (page.py)
save_png(e, "page.png")                  # the same as a PNG (png.py)
"""

from lstmkit.explain.page import render_html, save_html
from lstmkit.explain.png import save_png
from lstmkit.explain.report import explain, summary

__all__ = ["explain", "render_html", "save_html", "save_png", "summary"]
