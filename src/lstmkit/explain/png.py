"""The explanation as a PNG (matplotlib): words coloured by attribution, the trajectory, the memory
through time (the prediction's gradient per token and per cell), gate heat maps."""

from __future__ import annotations

import numpy as np

from lstmkit.atomic import write_with


def _attribution_colours(a):
    """RGBA per token: blue towards the target class, red away, white at 0 (scaled by max |a|)."""
    import matplotlib

    a = np.asarray(a, np.float64)
    scale = max(float(np.abs(a).max()) if a.size else 0.0, 1e-6)
    return matplotlib.colormaps["RdBu"](0.5 + 0.5 * np.clip(a / scale, -1, 1) * 0.85)


def save_png(explanation, path, *, layer=-1, direction=0, max_words=600):
    """Draw the explanation with matplotlib (Agg): the words coloured by attribution, the trajectory,
    the memory through time, the mean forget gate and cell norm, and heat maps (units x tokens) of i, f, g, o, c, h for one
    LSTM layer (default the last) and direction (default the first, forward)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = explanation
    n = e["n_used"]
    lay = e["layers"][layer]
    dr = lay["directions"][min(direction, len(lay["directions"]) - 1)]

    # Lay the words out first, in monospace: chars per line from the axis width in points.
    fig_w, font = 14.0, 7.5
    per_line = int(fig_w * 0.94 * 72 / (0.6 * font)) - 2
    placed, lines = _place_words(e["words"][:max_words], per_line)
    extra = ([f"... {len(e['words']) - max_words:,} more words not drawn"] if len(e["words"]) > max_words else []) + [
        "note: " + s for s in e["notes"]
    ]
    text_h = 0.4 + 0.16 * (lines + 1.6 * len(extra))
    heights = [text_h, 2.3, 2.0, 1.5, 1.9, 1.9, 1.9]
    fig = plt.figure(figsize=(fig_w, sum(heights) + 1.6))
    grid = fig.add_gridspec(7, 2, height_ratios=heights, hspace=0.6, wspace=0.16)
    title = f"{e['label']} (probability {e['probability']:.3f})   {n:,} of {e['n_tokens']:,} tokens read"
    fig.suptitle("lstmkit explain: " + title, fontsize=13, y=1 - 0.12 / (sum(heights) + 1.6))

    _draw_words(fig.add_subplot(grid[0, :]), e, placed, lines, extra, per_line, font)
    _draw_trajectory(fig.add_subplot(grid[1, :]), e)
    _draw_memory(fig.add_subplot(grid[2, :]), e)
    _draw_forget_and_norm(fig.add_subplot(grid[3, :]), n, lay, dr)
    _draw_heat_maps(fig, grid, n, lay, dr)
    fig.subplots_adjust(left=0.045, right=0.965, top=1 - 0.75 / fig.get_figheight(), bottom=0.45 / fig.get_figheight())
    try:
        return write_with(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"), suffix=".png")
    finally:
        plt.close(fig)


def _place_words(words, per_line):
    """Wrap the words into lines of per_line characters: ([(x, y, shown word, k)], number of lines)."""
    placed, x, y = [], 0, 0
    for k, word in enumerate(words):
        w = word if len(word) < 40 else word[:37] + "..."
        if x + len(w) > per_line and x > 0:
            x, y = 0, y + 1
        placed.append((x, y, w, k))
        x += len(w) + 1
    return placed, (y + 1 if placed else 1)


def _draw_words(ax, e, placed, lines, extra, per_line, font):
    """1. the words, each read word on its attribution's colour; unread words grey."""
    n = e["n_used"]
    ax.set_axis_off()
    ax.set_title(
        f"words coloured by occlusion attribution, in log-odds (blue: towards {e['target_class']!r}, red: away; grey: not read)",
        fontsize=10,
        loc="left",
    )
    colours = _attribution_colours(e["attribution"])
    for x, y, w, k in placed:
        read = k < n
        box = {"facecolor": colours[k] if read else "#eeeeee", "edgecolor": "none", "pad": 0.8}
        ax.text(x, y, w, family="monospace", fontsize=font, va="top", color="black" if read else "#999999", bbox=box)
    for k, line in enumerate(extra):
        ax.text(0, lines + 0.4 + 1.6 * k, line, fontsize=font + 0.5, va="top", color="#8a4b00")
    ax.set_xlim(-0.5, per_line + 0.5)
    ax.set_ylim(lines + 1.6 * len(extra), -0.6)


def _draw_trajectory(ax, e):
    """2. the trajectory, with the attribution as bars on its own axis."""
    n = e["n_used"]
    steps = np.arange(n)
    if n:
        bars = ax.twinx()
        a = np.asarray(e["attribution"])
        amax = max(float(np.abs(a).max()), 1e-6) * 1.1
        bars.bar(steps, a, color=_attribution_colours(a), width=1.0, alpha=0.9)
        bars.set_ylim(-amax, amax)
        bars.set_ylabel("attribution (log-odds)", fontsize=8)
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(steps, e["trajectory"], color="black", lw=1.4, label=f"p({e['target_class']}) if the text ended here")
        ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_xlim(-0.5, n - 0.5)
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no tokens read: no trajectory", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title("trajectory (line) and attribution (bars)", fontsize=10, loc="left")
    ax.grid(alpha=0.3)


def _draw_memory(ax, e):
    """3. memory through time: ||dz/dx_t|| per token (bars), ||dz/dc_t|| per direction (lines), the reach."""
    n, memory = e["n_used"], e.get("memory")
    reach = memory and memory["reach"]
    title = "memory through time: the prediction's gradient per token's input (bars) and per cell (lines)"
    if reach:
        title += (
            f"; it reaches back {reach['tokens_back']:,} tokens, to token {reach['earliest']} (>= 10% of the largest)"
        )
    ax.set_title(title, fontsize=10, loc="left")
    if not n or not memory:
        ax.text(0.5, 0.5, "no tokens read: no gradients", ha="center", va="center", transform=ax.transAxes)
        return
    steps = np.arange(n)
    ax.bar(steps, memory["gradient_norm"], color="#9e7bb5", width=0.8, label="||dz/dx_t|| (left)")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel("||dz/dx_t||", fontsize=8)
    if reach:
        ax.axvline(reach["earliest"], color="#7b3294", lw=1.0, ls="--")
    cells = ax.twinx()
    for d, colour in zip(memory["cell_gradient_norm"], ("#b2182b", "#2166ac")):
        cells.plot(steps, d["values"], color=colour, lw=1.3, label=f"||dz/dc_t|| {d['name']} (right)")
    cells.set_ylim(0, max(max(max(d["values"]) for d in memory["cell_gradient_norm"]), 1e-12) * 1.1)
    ax.legend(handles=ax.containers[:1] + cells.get_lines(), loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)


def _draw_forget_and_norm(ax, n, lay, dr):
    """4. mean forget gate and cell norm."""
    steps = np.arange(n)
    if n:
        ax.plot(steps, dr["mean_forget"], color="#21918c", lw=1.2, label="mean forget gate (left)")
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, n - 0.5)
        norm = ax.twinx()
        norm.plot(steps, dr["cell_norm"], color="#b2182b", lw=1.2, label="cell norm ||c|| (right)")
        norm.set_ylim(0, max(max(dr["cell_norm"]), 1e-6) * 1.1)
        ax.legend(handles=ax.get_lines() + norm.get_lines(), loc="lower right", fontsize=8)
    ax.set_title(f"mean forget gate and cell norm   (layer {lay['index']}, {dr['name']})", fontsize=10, loc="left")
    ax.grid(alpha=0.3)


# The heat maps: key, title, colour map, range (None: symmetric around 0 at the largest |value|).
_HEAT_MAPS = [
    ("i", "input gate i", "viridis", 0, 1),
    ("f", "forget gate f", "viridis", 0, 1),
    ("g", "candidate g", "RdBu", -1, 1),
    ("o", "output gate o", "viridis", 0, 1),
    ("c", "cell c", "RdBu", None, None),
    ("h", "hidden h", "RdBu", -1, 1),
]


def _draw_heat_maps(fig, grid, n, lay, dr):
    """5. heat maps, units x tokens, two per row of the grid from its row 4."""
    for k, (key, name, cmap, lo, hi) in enumerate(_HEAT_MAPS):
        ax = fig.add_subplot(grid[4 + k // 2, k % 2])
        m = np.asarray(dr[key], np.float64).reshape(n, -1).T if n else np.full((lay["units"], 1), np.nan)
        if lo is None:
            hi = max(float(np.nanmax(np.abs(m))) if n else 1.0, 1e-6)
            lo = -hi
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if not n:
            ax.text(0.5, 0.5, "no tokens read", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name}   (layer {lay['index']}, {dr['name']})", fontsize=9, loc="left")
        ax.set_ylabel("unit")
        if k >= 4:
            ax.set_xlabel("token")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
