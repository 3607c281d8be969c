"""The server's page in a real browser: headless Chromium opens it with a review, the page asks
the server, and shows the label, every class's probability and explain's page with its gates.
Skipped without Chromium."""

import html
import re
import subprocess

import pytest

import lstmkit
from helpers import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")

# As in tests/explain/test_explain_browser.py: flags that work as root in a container, a fresh
# profile, console messages on stderr; the virtual time budget lets the page's requests finish.
FLAGS = [*CHROMIUM_FLAGS, "--virtual-time-budget=30000"]


def test_the_page_shows_the_label_probabilities_and_gates(model_dir, start_server, tmp_path):
    server = start_server(model_dir)
    review = "a great and lovely movie, the plot was fine"
    url = f"{server.url}/?text={review.replace(' ', '%20').replace(',', '%2C')}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not [line for line in r.stderr.splitlines() if ":CONSOLE" in line]  # the page logs nothing when all is well
    dom = r.stdout

    status = dict(re.findall(r'data-([\w-]+)="([^"]*)"', re.search(r'<span id="status"([^>]*)>', dom).group(1)))
    assert status["state"] == "done", status
    assert status["explain-status"] == "ok" and status["explain-views"] == "2", status  # both directions' gates
    assert int(status["explain-heatmaps"]) == 6 and int(status["explain-tokens"]) == len(review.split()), status

    expected = lstmkit.load_model(model_dir).predict([review])
    label = re.search(r'<div id="label">([^<]*)</div>', dom).group(1)
    assert label.startswith(expected.labels[0] + " (")
    bars = dict(re.findall(r'class="bar" data-label="([^"]*)" data-probability="([^"]*)"', dom))
    assert bars.keys() == {"neg", "pos"}
    for k, name in enumerate(expected.class_names):
        assert float(bars[name]) == pytest.approx(float(expected.probabilities[0, k]), abs=1e-5)
    srcdoc = html.unescape(re.search(r'<iframe id="explain"[^>]*srcdoc="([^"]*)"', dom).group(1))
    assert '<script id="explain-data" type="application/json">' in srcdoc and '"layers"' in srcdoc
