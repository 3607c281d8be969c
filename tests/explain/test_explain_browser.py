"""The explain page in a real browser: headless Chromium renders it (the memory-through-time view
too), the page's self-check passes, no console message or error appears, and a screenshot is
taken. Skipped without Chromium."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import CHROMIUM, CHROMIUM_FLAGS
from lstmkit.data.text import TextVectorizer
from lstmkit.explain.page import save_html
from lstmkit.explain.report import explain
from lstmkit.nn.layers import LSTM, Bidirectional, Dense, Embedding
from lstmkit.nn.model import Sequential

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)")

# Flags that work as root in a container; a fresh profile per run; console messages on stderr.
FLAGS = [*CHROMIUM_FLAGS, "--hide-scrollbars"]


def chromium(tmp_path, page, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]  # the page logs nothing when all is well
    assert not console, console
    return r


@pytest.fixture(scope="module")
def model():
    texts = ["the movie was good", "a bad plot", "great actor and a dull scene", "it was lovely"]
    m = Sequential(
        [
            TextVectorizer(max_tokens=20, output_sequence_length=24),
            Embedding(20, 8, mask_zero=True),
            Bidirectional(LSTM(6)),
            Dense(1, "sigmoid"),
        ],
        class_names=["neg", "pos"],
    )
    m.vectorizer.adapt(texts)
    m.build(seed=0)
    return m


def selfcheck(dom):
    match = re.search(r'<div id="selfcheck"([^>]*)>([^<]*)<', dom)
    assert match, "the page did not render its self-check"
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', match.group(1)))
    return attrs, match.group(2)


def test_page_renders_in_chromium(model, tmp_path):
    text = 'The movie was GOOD, really <b>good</b> & the plot "great"; ' + " ".join(["a dull scene"] * 15) + " ... fin"
    e = explain(model, text)
    assert e["truncated"] and e["n_used"] == 24
    page = save_html(e, tmp_path / "explain.html")

    dom = chromium(tmp_path, page, "--dump-dom").stdout
    attrs, message = selfcheck(dom)
    assert attrs["status"] == "ok", message
    assert int(attrs["tokens"]) == len(e["words"]) and int(attrs["points"]) == 24 and int(attrs["heatmaps"]) == 6
    assert int(attrs["views"]) == 2  # forward and backward both rendered
    assert dom.count('class="tok') == len(e["words"]) and "the model stops reading here" in dom
    assert dom.count('data-direction="') == 2 and dom.count("<canvas") == 6 and 'class="series"' in dom
    # Memory through time: one bar per token read, labelled with its word, a line per direction,
    # the reach in words and marked; the words went in as text, not markup.
    reach = e["memory"]["reach"]
    assert int(attrs["marks"]) == 24 and dom.count('class="mem-mark"') == 24
    assert dom.count('class="word-label"') == 24 and "&lt;b&gt;good&lt;/b&gt;" in dom and "<b>good</b>" not in dom
    assert f"The decision reaches back {reach['tokens_back']} token" in dom and "reaches back to here" in dom
    assert dom.count("||dz/dc_t|| forward") == 1 and dom.count("||dz/dc_t|| backward") == 1

    shot = tmp_path / "explain.png"
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,1800")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1800, 1280) and pixels[..., :3].std() > 0.05, "the screenshot is blank"
    keep = os.environ.get("LSTMKIT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "explain-browser-test.png")


def test_empty_text_page_renders(model, tmp_path):
    e = explain(model, "")
    page = save_html(e, tmp_path / "empty.html")
    attrs, message = selfcheck(chromium(tmp_path, page, "--dump-dom").stdout)
    assert attrs["status"] == "ok", message
    assert (attrs["tokens"], attrs["points"], attrs["heatmaps"], attrs["marks"]) == ("0", "0", "0", "0")
    assert np.isfinite(e["probability"])
