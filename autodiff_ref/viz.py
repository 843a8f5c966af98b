"""Pictures of autodiff: the computational graph behind a result, and training curves.

Everything is drawn with matplotlib alone, so it works in a pip-only environment (no Graphviz
binary) and shows inline in Jupyter. Both functions return a ``matplotlib.figure.Figure``. When
they make the figure themselves, it is not registered with ``pyplot`` (so repeated calls do not
pile up open figures) and it carries its own PNG picture for Jupyter: a notebook cell that ends
with ``draw_graph(z)`` shows the picture exactly once, whatever the matplotlib backend.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .graph import topological_order
from .tensor import Tensor

__all__ = ["draw_graph", "plot_history"]

# Layout in inches (the figure is sized so that one data unit is one inch). Text sets the box
# sizes, so the columns are made wide enough for their longest line at this font size.
FONT_SIZE = 9.0
CHAR_WIDTH = 0.6 * FONT_SIZE / 72  # a typical character of the default sans-serif font
BOX_PADDING = 0.35
ARROW_GAP = 0.5  # free space between neighbouring columns, where the arrows run
ROW_HEIGHT = 0.95
MARGIN = 0.3
# Beyond this the picture would be too large to display; it is shrunk, fonts included.
MAX_FIGURE_INCHES = (30.0, 20.0)
# A notebook shows about this many inches (at 100 dpi) at full size: a wider graph is wrapped into
# bands of columns, one below the other, as text wraps into lines, rather than shrunk.
NOTEBOOK_WIDTH = 9.5
BAND_GAP = 0.55  # between two bands, where the arrows from one band to the next turn
EXIT_LANE = 0.35  # right of a band, where those arrows go down
ENTRY_LANE = 0.4  # left of every band but the first, where they come in
MIN_FONT_SIZE = 4.0
DEFAULT_MAX_NODES = 100

LEAF_COLOR = "#dbe9f6"
VALUE_COLOR = "#ffffff"
ROOT_COLOR = "#fde2b8"
OP_COLOR = "#fff3b0"
EDGE_COLOR = "#555555"


class _InlineFigure(Figure):
    """A Figure that Jupyter shows as a PNG when it is a cell's value, without pyplot."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def draw_graph(
    root: Any, ax: Axes | None = None, *, max_nodes: int = DEFAULT_MAX_NODES,
    max_width: float | None = NOTEBOOK_WIDTH, names: Mapping[str, Any] | None = None,
) -> Figure:
    """Draw the computational graph that produced ``root``, inputs on the left, ``root`` on the right.

    ``root`` is a scalar ``Value`` (``autodiff_ref.scalar.Value``, or any class with its
    attributes ``data``, ``grad``, ``inputs`` and ``op``, such as the one built in notebook 3) or a
    ``Tensor``. Each value is a box: its ``label`` if it has one, its number (for a Tensor: its
    shape, and its numbers when it has at most four) and, once known, its gradient. The op that
    produced a value is an ellipse just left of its box, with an arrow from each input. When an op
    has two or more inputs, each arrow is numbered with the argument position it feeds (``a - b``
    and ``b - a`` differ only there). Leaves are blue, ``root`` orange.

    A Tensor's gradient is known once ``.grad`` is not None. A Value's ``grad`` starts at 0.0, so
    Value gradients are shown once any node of the graph has a non-zero one (after ``backward()``).

    Columns are layers, found in one pass over ``topological_order(root)``: a computed value sits
    one column right of its deepest input (its column is the longest path from a leaf); a leaf
    sits just left of the first op that uses it.

    ``names`` labels values that have no ``label`` of their own (a Tensor has none): a dict from
    each name to its value, such as ``{"W": W, "x": x}``, matched by identity; the name is the
    first line of the value's box.

    A graph wider than ``max_width`` inches (the width of a notebook, by default) is wrapped:
    its columns are split into bands that fit, each band below the one before, and an arrow from
    one band to the next leaves on the right, runs back left in the gap between the bands and
    enters the next band from the left. ``max_width=None`` draws every column in one band.

    Graphs with more than ``max_nodes`` values raise a ValueError instead of drawing an
    unreadable picture slowly; pass a larger ``max_nodes`` to draw them anyway. Draws into ``ax``
    when given (and sets its limits), otherwise into a new figure sized to the graph. Returns the
    figure.
    """
    if isinstance(root, Tensor):
        kind = "Tensor"
    elif all(hasattr(root, name) for name in ("data", "grad", "inputs", "op")):
        kind = "Value"
    else:
        raise TypeError(
            f"draw_graph draws the graph behind a Value or a Tensor, not a {type(root).__name__}"
        )
    order = topological_order(root)
    if len(order) > max_nodes:
        raise ValueError(
            f"the graph behind this {kind} has {len(order)} values; draw_graph draws at most "
            f"max_nodes={max_nodes}, because a bigger picture is slow to draw and too crowded to "
            f"read. Draw a smaller expression, or pass max_nodes={len(order)} to draw it anyway."
        )

    layout = _Layout(order)
    if kind == "Tensor":
        show_value_grads = False  # a Tensor says itself whether its gradient is known
    else:
        show_value_grads = any(node.grad for node in order)
    named = {id(value): str(name) for name, value in (names or {}).items()}
    labels = {id(node): _value_label(node, kind, show_value_grads, named.get(id(node), ""))
              for node in order}
    op_labels = {id(node): _op_label(node, kind) for node in order if node.inputs}

    value_x, op_x, lefts, rights = _column_positions(layout.rows, labels, op_labels)
    bands = _bands(lefts, rights, max_width)
    band_of = [b for b, (first, last) in enumerate(bands) for _ in range(first, last + 1)]
    # Each band is shifted left to start at the margin, and down below the bands before it.
    x_shift, y_centre, band_right, band_bottom = [], [], [], []
    width, top = 0.0, 0.0
    for first, last in bands:
        rows_high = max(len(layout.rows[layer]) for layer in range(first, last + 1)) * ROW_HEIGHT
        x_shift.append(MARGIN + (ENTRY_LANE if first > 0 else 0.0) - lefts[first])
        band_right.append(rights[last] + x_shift[-1])
        lane = EXIT_LANE if len(bands) > 1 else 0.0
        width = max(width, band_right[-1] + lane + MARGIN)
        y_centre.append(top - MARGIN - rows_high / 2)
        band_bottom.append(top - MARGIN - rows_high)
        top -= rows_high + (BAND_GAP if len(bands) > 1 else 2 * MARGIN)
    height = -top if len(bands) == 1 else -top - BAND_GAP + 2 * MARGIN
    scale = min(1.0, MAX_FIGURE_INCHES[0] / width, MAX_FIGURE_INCHES[1] / height)
    font_size = max(MIN_FONT_SIZE, FONT_SIZE * scale)

    # A long chain shrinks to a strip; keep it at least one row of text high.
    figure_height = max(height * scale, 4 * font_size / 72)
    if ax is None:
        figure = _InlineFigure(figsize=(width * scale, figure_height))
        ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, width * scale)
    middle = -height / 2 * scale
    ax.set_ylim(middle - figure_height / 2, middle + figure_height / 2)
    ax.set_axis_off()

    def op_position(layer: int, y: float) -> tuple[float, float]:
        return ((op_x[layer] + x_shift[band_of[layer]]) * scale, y)

    # Where each value box (and each bend of a long arrow) goes, in the figure's inches.
    position: dict[int, tuple[float, float]] = {}
    for layer, row in enumerate(layout.rows):
        band = band_of[layer]
        for index, item in enumerate(row):
            y = y_centre[band] + ((len(row) - 1) / 2 - index) * ROW_HEIGHT  # the first on top
            position[id(item)] = ((value_x[layer] + x_shift[band]) * scale, y * scale)

    def detour(start: tuple[float, float], end: tuple[float, float], band: int, lane: int):
        """The bends of a segment from ``band`` to the next one: right, down, left, down."""
        exit_x = (band_right[band] + 0.12 + 0.07 * lane) * scale
        gap_y = (band_bottom[band] - 0.5 * BAND_GAP + 0.07 * lane) * scale
        entry_x = (MARGIN + 0.1 + 0.07 * lane) * scale  # left of the band's first op column
        return [(exit_x, start[1]), (exit_x, gap_y), (entry_x, gap_y), (entry_x, end[1])]

    lanes = [0] * len(bands)  # arrows that leave each band so far: each gets its own lane

    value_boxes: dict[int, Text] = {}
    for node in order:
        if node is root:
            color = ROOT_COLOR
        else:
            color = VALUE_COLOR if node.inputs else LEAF_COLOR
        value_boxes[id(node)] = ax.text(
            *position[id(node)], labels[id(node)], ha="center", va="center", fontsize=font_size,
            gid="value", bbox=dict(boxstyle="round,pad=0.4", facecolor=color, edgecolor="#333333"),
        )

    for node in order:
        if not node.inputs:
            continue
        out_x, out_y = position[id(node)]
        op_point = op_position(layout.layer_of[id(node)], out_y)
        op_box = ax.text(
            *op_point, op_labels[id(node)], ha="center", va="center", fontsize=font_size,
            gid="op", bbox=dict(boxstyle="ellipse,pad=0.3", facecolor=OP_COLOR,
                                edgecolor="#333333"),
        )
        _arrow(ax, op_box, value_boxes[id(node)], op_point, (out_x, out_y))
        # One arrow per distinct input; a node used twice (x * x) gets one arrow numbered "1, 2".
        for parent, arguments in layout.distinct_inputs(node):
            bends = layout.routes[(id(parent), id(node))]
            # A long arrow runs level through each column it crosses, in the slot kept for it.
            points = [position[id(parent)]]
            layer = layout.layer_of[id(parent)]
            for target, target_layer, landing in [
                *((bend, bend.layer, position[id(bend)]) for bend in bends),
                (node, layout.layer_of[id(node)], None),
            ]:
                y = landing[1] if landing else out_y
                entry = op_position(target_layer, y)
                if band_of[target_layer] != band_of[layer]:  # into the next band
                    # Arrows into one op come in at different heights, the first argument on top.
                    shift = 0.0 if landing else 0.35 * ((len(node.inputs) - 1) / 2 - (arguments[0] - 1))
                    bent = detour(points[-1], (entry[0], entry[1] + shift * scale), band_of[layer],
                                  lanes[band_of[layer]])
                    points += bent
                    lanes[band_of[layer]] += 1
                points += [entry, landing] if landing else [entry]
                layer = target_layer
            _polyline_arrow(ax, points, value_boxes[id(parent)], op_box)
            if len(node.inputs) > 1:
                _number_arrow(ax, points[-2], op_point, arguments, scale, font_size)
    return ax.figure


def plot_history(
    history: Mapping[str, Sequence[float]], ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Training curves: every ``history`` key containing "loss" on the left axis, every key
    containing "acc" on a second axis on the right, one point per epoch.

    ``history`` maps names to per-epoch lists, e.g. ``{"train_loss": [...], "test_accuracy":
    [...]}``. An ``"epoch"`` entry, if present, gives the x values (else 1, 2, ...); other keys
    are ignored. Accuracies between 0 and 1 are shown as percentages. The legend sits above the
    plot, and ``title`` above the legend (a title set on ``ax`` afterwards would cover it). Draws
    into ``ax`` when given, otherwise into a new figure; returns the figure.
    """
    if not isinstance(history, Mapping):
        raise TypeError(f"plot_history expects a dict of per-epoch lists, not a {type(history).__name__}")
    loss_keys = [key for key in history if "loss" in key.lower()]
    accuracy_keys = [key for key in history if "acc" in key.lower()]
    if not loss_keys and not accuracy_keys:
        raise ValueError(
            f"plot_history found no curve to draw among the keys {sorted(history)}: it draws keys "
            "that contain 'loss' or 'acc', e.g. 'train_loss' and 'test_accuracy'"
        )
    empty = [key for key in loss_keys + accuracy_keys if len(history[key]) == 0]
    if empty:
        raise ValueError(f"plot_history: no values recorded for {empty}")

    if ax is None:
        figure = _InlineFigure(figsize=(7.0, 4.0), layout="constrained")
        ax = figure.add_subplot()
    epochs = history.get("epoch")

    def x_values(values: Sequence[float]) -> list[float] | range:
        return list(epochs) if epochs is not None and len(epochs) == len(values) else range(1, len(values) + 1)

    lines = []
    for key in loss_keys:
        lines += ax.plot(x_values(history[key]), history[key], marker=".", label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if loss_keys:
        ax.set_ylabel("loss")
    accuracy_ax = ax.twinx() if loss_keys and accuracy_keys else ax
    colors = iter(["tab:green", "tab:red", "tab:purple", "tab:brown"])
    for key in accuracy_keys:
        lines += accuracy_ax.plot(
            x_values(history[key]), history[key], marker=".", linestyle="--",
            color=next(colors, None), label=key,
        )
    if accuracy_keys:
        accuracy_ax.set_ylabel("accuracy")
        values = np.concatenate([np.asarray(history[key], dtype=float) for key in accuracy_keys])
        if np.all((values >= 0) & (values <= 1)):
            accuracy_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    # Above the plot, in rows of up to four: inside, the legend would cover some curve, since
    # falling losses and rising accuracies between them leave no corner free. On the top axes.
    columns = min(len(lines), 4)
    accuracy_ax.legend(lines, [line.get_label() for line in lines], loc="lower center",
                       bbox_to_anchor=(0.5, 1.0), ncol=columns, frameon=False)
    if title is not None:
        rows = -(-len(lines) // columns)
        ax.set_title(title, pad=12 + 20 * rows)  # in points: a row of the legend is about 18 high
    ax.grid(alpha=0.3)
    return ax.figure


# -- layout -------------------------------------------------------------------------------------


class _Bend:
    """Where a long arrow crosses a column; it holds a row slot there, like a value would."""

    def __init__(self, source: Any, layer: int) -> None:
        self.inputs = (source,)
        self.layer = layer


class _Layout:
    """Columns and rows of the picture.

    Columns: a computed value sits one column right of its deepest input (its column is the
    longest path from a leaf); a leaf sits just left of the first op that uses it, so a constant
    such as the 1 in ``1 + exp(-x)`` appears next to its op rather than far away on the left.
    An arrow that skips columns gets a :class:`_Bend` in each column it crosses, so that it runs
    through a free row slot instead of through other boxes.

    Rows: start from the topological order, then sweep twice: left to right, sort each column by
    the mean row of what feeds it; right to left, by the mean row of what it feeds, where an op's
    first argument counts as slightly above the op and its last as slightly below (so the inputs
    of ``a - b`` appear as a above b). A heuristic, but it untangles the small graphs this module
    is for.
    """

    def __init__(self, order: list[Any]) -> None:
        self.layer_of: dict[int, int] = {}
        for node in order:  # inputs come first, so their columns are already known
            self.layer_of[id(node)] = 1 + max((self.layer_of[id(p)] for p in node.inputs), default=-1)
        first_use: dict[int, int] = {}
        for node in order:
            for parent in node.inputs:
                first_use[id(parent)] = min(first_use.get(id(parent), self.layer_of[id(node)]), self.layer_of[id(node)])
        for node in order:
            if not node.inputs and id(node) in first_use:
                self.layer_of[id(node)] = first_use[id(node)] - 1

        self.rows: list[list[Any]] = [[] for _ in range(max(self.layer_of.values()) + 1)]
        for node in order:
            self.rows[self.layer_of[id(node)]].append(node)
        self.routes: dict[tuple[int, int], list[_Bend]] = {}
        # What feeds each slot, and what each slot feeds with the offset of the argument it fills.
        feeds: dict[int, list[Any]] = {}
        fed_by: dict[int, list[tuple[Any, float]]] = {}
        for node in order:
            count = len(node.inputs)
            for parent, arguments in self.distinct_inputs(node):
                bends, source = [], parent
                for layer in range(self.layer_of[id(parent)] + 1, self.layer_of[id(node)]):
                    bend = _Bend(source, layer)
                    self.rows[layer].append(bend)
                    feeds[id(bend)] = [source]
                    fed_by.setdefault(id(source), []).append((bend, 0.0))
                    bends.append(bend)
                    source = bend
                self.routes[(id(parent), id(node))] = bends
                feeds.setdefault(id(node), []).append(source)
                offset = 0.3 * (arguments[0] - 1 - (count - 1) / 2)
                fed_by.setdefault(id(source), []).append((node, offset))

        index: dict[int, float] = {}

        def number(row: list[Any]) -> None:
            index.update({id(item): i - (len(row) - 1) / 2 for i, item in enumerate(row)})

        def by_inputs(item: Any) -> float:
            sources = feeds.get(id(item))
            return float(np.mean([index[id(s)] for s in sources])) if sources else index[id(item)]

        def by_users(item: Any) -> float:
            return float(np.mean([index[id(user)] + offset for user, offset in fed_by[id(item)]]))

        for row in self.rows:
            number(row)
        for _ in range(2):
            for row in self.rows[1:]:
                row.sort(key=by_inputs)
                number(row)
            for row in reversed(self.rows[:-1]):  # the last column holds only the root
                row.sort(key=by_users)
                number(row)

    @staticmethod
    def distinct_inputs(node: Any) -> list[tuple[Any, list[int]]]:
        """Each distinct input of ``node`` with the argument positions (from 1) it fills."""
        positions: dict[int, tuple[Any, list[int]]] = {}
        for argument, parent in enumerate(node.inputs, start=1):
            positions.setdefault(id(parent), (parent, []))[1].append(argument)
        return list(positions.values())


def _text_width(label: str) -> float:
    return max(len(line) for line in label.split("\n")) * CHAR_WIDTH + BOX_PADDING


def _bands(lefts: list[float], rights: list[float], max_width: float | None) -> list[tuple[int, int]]:
    """Split the layers into runs (first, last) that each fit ``max_width`` inches, margins and
    lanes included, as few runs as can be and of widths as even as can be (so that the last band
    is not a stub); a layer wider than that on its own gets a band of its own."""
    if max_width is None or rights[-1] - lefts[0] + 2 * MARGIN <= max_width:
        return [(0, len(lefts) - 1)]
    fewest = len(_greedy_bands(lefts, rights, max_width))
    low, high = 0.0, max_width  # the narrowest width that still needs no more bands than that
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (low, middle) if len(_greedy_bands(lefts, rights, middle)) <= fewest else (middle, high)
    return _greedy_bands(lefts, rights, high)


def _greedy_bands(lefts: list[float], rights: list[float], max_width: float) -> list[tuple[int, int]]:
    """As many layers in each band as fit ``max_width``, band after band."""
    bands, first = [], 0
    for layer in range(1, len(lefts)):
        if rights[layer] - lefts[first] + 2 * MARGIN + EXIT_LANE + ENTRY_LANE > max_width:
            bands.append((first, layer - 1))
            first = layer
    bands.append((first, len(lefts) - 1))
    return bands


def _column_positions(
    rows: list[list[Any]], labels: dict[int, str], op_labels: dict[int, str]
) -> tuple[list[float], list[float], list[float], list[float]]:
    """x centre of each layer's value column and of the op column just left of it, and where each
    layer (its op column, then its value column) starts and ends."""
    value_x, op_x, lefts, rights = [], [], [], []
    x = MARGIN
    for layer, row in enumerate(rows):
        lefts.append(x)
        if layer > 0:
            op_width = max(
                (_text_width(op_labels[id(node)]) for node in row if id(node) in op_labels), default=0.0
            )
            op_x.append(x + ARROW_GAP + op_width / 2)
            x += ARROW_GAP + op_width + ARROW_GAP / 2
        else:
            op_x.append(x)  # leaves have no op
        value_width = max((_text_width(labels[id(node)]) for node in row if id(node) in labels), default=0.0)
        value_x.append(x + value_width / 2)
        x += value_width
        rights.append(x)
    return value_x, op_x, lefts, rights


# -- labels -------------------------------------------------------------------------------------


def _number(x: float) -> str:
    return f"{x + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0


def _array_summary(array: np.ndarray) -> str:
    """A number, or up to four numbers in brackets."""
    flat = np.asarray(array, dtype=float).ravel()
    if flat.size == 1:
        return _number(float(flat[0]))
    return "[" + ", ".join(f"{v + 0.0:.3g}" for v in flat) + "]"


def _value_label(node: Any, kind: str, show_grad: bool, name: str = "") -> str:
    lines = []
    label = name or getattr(node, "label", "")
    if label:
        lines.append(str(label))
    if kind == "Tensor":
        lines.append(f"shape {node.shape}")
        if node.data.size <= 4:
            lines.append("data " + _array_summary(node.data))
        if node.grad is not None:
            grad = np.asarray(node.grad)
            lines.append("grad " + (_array_summary(grad) if grad.size <= 4 else f"✓ {grad.shape}"))
    else:
        lines.append("data " + _number(float(node.data)))
        if show_grad:
            lines.append("grad " + _number(float(node.grad)))
    return "\n".join(lines)


def _op_label(node: Any, kind: str) -> str:
    name = type(node.op).__name__ if kind == "Tensor" else str(node.op or "op")
    return f"{name:^3}"  # a one-character op such as "+" still gets a round ellipse


# -- arrows -------------------------------------------------------------------------------------


def _arrow(ax: Axes, source: Text | None, target: Text | None,
           start: tuple[float, float], end: tuple[float, float], head: bool = True) -> None:
    """A straight arrow, clipped to the outlines of the boxes it joins (known at draw time).

    Drawn above the boxes (zorder 4 > 3): matplotlib places a box's outline when it draws the
    box, and the clipping needs that outline.
    """
    ax.annotate(
        "", xy=end, xytext=start,
        arrowprops=dict(
            arrowstyle="-|>" if head else "-", color=EDGE_COLOR, linewidth=1.0,
            shrinkA=1 if source else 0, shrinkB=1 if target else 0,
            patchA=source.get_bbox_patch() if source else None,
            patchB=target.get_bbox_patch() if target else None,
        ),
        zorder=4,
    )


def _polyline_arrow(ax: Axes, points: list[tuple[float, float]], source: Text, target: Text) -> None:
    """An arrow from ``source`` through ``points[1:-1]`` to ``target``, one segment at a time."""
    last = len(points) - 2
    for i, (start, end) in enumerate(zip(points, points[1:])):
        _arrow(ax, source if i == 0 else None, target if i == last else None, start, end, head=i == last)


def _number_arrow(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], arguments: list[int],
    scale: float, font_size: float,
) -> None:
    """Write the argument position(s) an arrow feeds just before it reaches the op."""
    (x0, y0), (x1, y1) = start, end
    back = min(0.55 * scale, 0.5 * abs(x1 - x0))
    x = x1 - back
    y = y1 + (y0 - y1) * back / (x1 - x0) if x1 != x0 else y1
    ax.text(
        x, y + 0.08 * scale, ", ".join(map(str, arguments)), ha="center", va="bottom",
        fontsize=font_size * 0.85, color="#1f4e99", gid="argument",
    )
