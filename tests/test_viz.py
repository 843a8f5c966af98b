"""autodiff_ref.viz: drawing computational graphs and training curves (Agg backend, no display)."""

from __future__ import annotations

import io
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from autodiff_ref import Tensor
from autodiff_ref.graph import topological_order
from autodiff_ref.viz import draw_graph, plot_history


def texts(figure: Figure, gid: str) -> list:
    """The drawn text artists of one kind: "value" boxes, "op" ellipses, "argument" numbers."""
    return [t for ax in figure.axes for t in ax.texts if t.get_gid() == gid]


def op_names(figure: Figure) -> list[str]:
    return sorted(t.get_text().strip() for t in texts(figure, "op"))


def rendered(figure: Figure) -> Figure:
    """Render to PNG: arrows are clipped to the boxes only at draw time, so that must work too."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return figure


def tensor_z() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    a, b, c = (Tensor(v, requires_grad=True) for v in (3.0, 2.0, 1.0))
    return a, b, c, (a - b) + c


# -- draw_graph on Tensors -----------------------------------------------------------------------


def test_tensor_graph_has_one_box_per_value_and_one_ellipse_per_op():
    a, b, c, z = tensor_z()
    figure = rendered(draw_graph(z))
    assert isinstance(figure, Figure)
    assert op_names(figure) == ["Add", "Sub"]
    assert len(texts(figure, "value")) == 5
    root_box = [t for t in texts(figure, "value") if "data 2" in t.get_text() and t.get_position()[0] > 2]
    assert root_box, "the root's box shows its value"
    # Both ops have two inputs, so each of their arrows carries its argument position.
    assert sorted(t.get_text() for t in texts(figure, "argument")) == ["1", "1", "2", "2"]


def test_first_argument_is_drawn_above_the_second():
    a, b, c, z = tensor_z()
    figure = draw_graph(z)
    y_of = {t.get_text().split("\n")[1]: t.get_position()[1] for t in texts(figure, "value") if "data" in t.get_text()}
    # a = 3 feeds Sub as argument 1, b = 2 as argument 2.
    assert y_of["data 3"] > y_of["data 2"]


def test_op_count_matches_the_graph_with_a_reused_node_and_shapes():
    rng = np.random.default_rng(0)
    W = Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    x = Tensor(rng.normal(size=2), requires_grad=True)
    h = (W @ x).tanh()
    loss = (h * h).sum() + h.sum()  # h is used three times
    order = topological_order(loss)
    figure = rendered(draw_graph(loss))
    assert op_names(figure) == sorted(type(node.op).__name__ for node in order if node.inputs)
    assert len(texts(figure, "value")) == len(order)
    labels = "\n".join(t.get_text() for t in texts(figure, "value"))
    assert "shape (3, 2)" in labels and "shape (2,)" in labels and "shape ()" in labels
    # h * h: one arrow from h, numbered with both argument positions.
    assert "1, 2" in [t.get_text() for t in texts(figure, "argument")]


def test_tensor_gradients_appear_once_known():
    x = Tensor(0.0, requires_grad=True)
    s = 1 / (1 + (-x).exp())
    before = "\n".join(t.get_text() for t in texts(draw_graph(s), "value"))
    assert "grad" not in before
    s.backward()
    after = [t.get_text() for t in texts(rendered(draw_graph(s)), "value")]
    assert "shape ()\ndata 0\ngrad 0.25" in after  # x: the sigmoid's slope at 0 is 1/4
    assert "shape ()\ndata 0.5\ngrad 1" in after  # the root
    big = Tensor(np.ones((5, 5)), requires_grad=True)
    total = (big * 2.0).sum()
    total.backward()
    labels = [t.get_text() for t in texts(draw_graph(total), "value")]
    assert "shape (5, 5)\ngrad ✓ (5, 5)" in labels


def test_a_new_figure_shows_itself_in_jupyter_as_a_png():
    *_, z = tensor_z()
    assert draw_graph(z)._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_history({"loss": [1.0, 0.5]})._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_draws_into_a_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    *_, z = tensor_z()
    assert draw_graph(z, ax=ax) is figure
    assert len(texts(figure, "op")) == 2


def test_a_single_leaf_is_one_box_and_no_op():
    figure = rendered(draw_graph(Tensor([1.0, 2.0])))
    assert len(texts(figure, "value")) == 1 and texts(figure, "op") == []


# -- draw_graph on scalar Values -----------------------------------------------------------------


def test_value_graph_and_gradients_after_backward():
    from autodiff_ref.scalar import Value

    a, b, c = Value(3.0, label="a"), Value(2.0, label="b"), Value(1.0, label="c")
    z = (a - b) + c
    figure = rendered(draw_graph(z))
    order = topological_order(z)
    assert op_names(figure) == sorted(n.op for n in order if n.inputs)
    assert len(texts(figure, "op")) == 2
    labels = [t.get_text() for t in texts(figure, "value")]
    assert "a\ndata 3" in labels and not any("grad" in label for label in labels)
    z.backward()
    labels = [t.get_text() for t in texts(draw_graph(z), "value")]
    assert "b\ndata 2\ngrad -1" in labels and "c\ndata 1\ngrad 1" in labels


def test_any_class_with_the_value_attributes_is_drawn():
    class Scalar:  # what a learner's own Value (notebook 3) looks like
        def __init__(self, data, inputs=(), op=""):
            self.data, self.grad, self.inputs, self.op = data, 0.0, tuple(inputs), op

    x = Scalar(2.0)
    y = Scalar(4.0, (x, x), "*")
    figure = rendered(draw_graph(Scalar(5.0, (y, Scalar(1.0)), "+")))
    assert op_names(figure) == ["*", "+"]


# -- bad input and big graphs --------------------------------------------------------------------


@pytest.mark.parametrize("thing", [3.0, [1.0, 2.0], np.ones(3), None, "x"])
def test_anything_else_is_a_type_error_naming_its_type(thing):
    with pytest.raises(TypeError, match=f"not a {type(thing).__name__}$"):
        draw_graph(thing)


def test_big_graph_is_refused_quickly_with_a_clear_message():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y.tanh()
    start = time.perf_counter()
    with pytest.raises(ValueError, match="has 5001 values; draw_graph draws at most max_nodes=100.*max_nodes=5001"):
        draw_graph(y)
    assert time.perf_counter() - start < 1.0


def test_a_few_hundred_nodes_draw_when_asked():
    rng = np.random.default_rng(1)
    nodes = [Tensor(rng.normal(), requires_grad=True) for _ in range(20)]
    while len(topological_order(nodes[-1])) < 300:
        i, j = rng.integers(len(nodes), size=2)
        nodes.append(nodes[i] * nodes[j] if rng.random() < 0.5 else nodes[i].tanh())
    root = nodes[-1]
    count = len(topological_order(root))
    start = time.perf_counter()
    figure = rendered(draw_graph(root, max_nodes=count))
    assert time.perf_counter() - start < 30.0
    assert len(texts(figure, "value")) == count
    width, height = figure.get_size_inches()
    assert width <= 30.0 and height <= 20.0


# -- plot_history --------------------------------------------------------------------------------


def test_plot_history_puts_losses_and_accuracies_on_two_axes():
    history = {
        "epoch": [1, 2, 3],
        "train_loss": [1.0, 0.6, 0.4],
        "test_loss": [1.1, 0.8, 0.7],
        "test_accuracy": [0.5, 0.7, 0.8],
        "elapsed": [0.1, 0.2, 0.3],
    }
    figure = rendered(plot_history(history))
    loss_ax, accuracy_ax = figure.axes
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["test_loss", "train_loss"]
    assert [line.get_label() for line in accuracy_ax.get_lines()] == ["test_accuracy"]
    assert list(accuracy_ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert list(accuracy_ax.get_lines()[0].get_ydata()) == [0.5, 0.7, 0.8]
    assert isinstance(accuracy_ax.yaxis.get_major_formatter(), PercentFormatter)
    assert loss_ax.get_ylabel() == "loss" and accuracy_ax.get_ylabel() == "accuracy"


def test_plot_history_puts_the_legend_above_every_curve():
    # Curves like the digit classifier's: the loss falls to the bottom, both accuracies level off
    # high on the right, so every one of matplotlib's nine legend places has a curve in it.
    history = {
        "epoch": list(range(1, 21)),
        "train_loss": [0.64, 0.09, 0.05, 0.03] + [0.01] * 16,
        "train_accuracy": [0.968, 0.99, 0.997, 0.999] + [1.0] * 16,
        "test_accuracy": [0.947, 0.958, 0.967, 0.967] + [0.972] * 16,
    }
    figure = rendered(plot_history(history))
    loss_ax, accuracy_ax = figure.axes
    legend = accuracy_ax.get_legend()  # on the top axes, so that it is drawn over every curve
    assert loss_ax.get_legend() is None and len(legend.get_texts()) == 3
    assert legend.get_window_extent().y0 >= accuracy_ax.bbox.y1  # above the plot: no curve runs there


@pytest.mark.parametrize("keys", [3, 6])
def test_plot_history_puts_its_title_above_the_legend(keys):
    history = {f"run{i}_loss": [1.0, 0.5, 0.2] for i in range(keys)}
    figure = rendered(plot_history(history, title="Training"))
    (ax,) = figure.axes
    title, legend = ax.title.get_window_extent(), ax.get_legend().get_window_extent()
    assert ax.get_title() == "Training" and title.y0 >= legend.y1


def test_plot_history_with_losses_only_and_into_a_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_history({"loss": [3.0, 2.0, 1.5, 1.2]}, ax=ax) is figure
    assert len(figure.axes) == 1
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4]


def test_plot_history_bad_input():
    with pytest.raises(ValueError, match="no curve to draw among the keys \\['epoch', 'time'\\]"):
        plot_history({"epoch": [1], "time": [0.1]})
    with pytest.raises(ValueError, match="no values recorded for \\['train_loss'\\]"):
        plot_history({"train_loss": []})
    with pytest.raises(TypeError, match="not a list"):
        plot_history([0.5, 0.4])


# -- wrapping a wide graph to a notebook's width -------------------------------------------------


def long_chain() -> Tensor:
    """The graph of a small network's loss: 8 columns of values, far wider than a notebook."""
    rng = np.random.default_rng(0)
    X, y = Tensor(rng.normal(size=(32, 1))), Tensor(rng.normal(size=(32, 1)))
    W1 = Tensor(rng.normal(size=(1, 8)), requires_grad=True)
    b1 = Tensor(rng.normal(size=8), requires_grad=True)
    W2 = Tensor(rng.normal(size=(8, 1)), requires_grad=True)
    return ((((X @ W1) + b1).tanh() @ W2 - y) ** 2).mean()


def test_a_wide_graph_wraps_into_bands_that_fit_a_notebook_at_full_font_size():
    from autodiff_ref.viz import FONT_SIZE, NOTEBOOK_WIDTH

    loss = long_chain()
    one_band = rendered(draw_graph(loss, max_width=None))
    assert one_band.get_size_inches()[0] > 1.5 * NOTEBOOK_WIDTH  # the case worth wrapping
    figure = rendered(draw_graph(loss))
    width, height = figure.get_size_inches()
    assert width <= NOTEBOOK_WIDTH and height > one_band.get_size_inches()[1]
    boxes = texts(figure, "value")
    assert len(boxes) == len(topological_order(loss))
    assert all(box.get_fontsize() == FONT_SIZE for box in boxes + texts(figure, "op"))
    # The inputs (top band) sit above the loss (bottom band); every box lies inside the figure.
    leaf_y = max(box.get_position()[1] for box in boxes)
    root_y = [box.get_position()[1] for box in boxes if box.get_bbox_patch().get_facecolor()[:3]
              == matplotlib.colors.to_rgb("#fde2b8")][0]
    assert root_y < leaf_y - 1.0
    ax = figure.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for box in boxes:
        x, y = box.get_position()
        assert x0 < x < x1 and y0 < y < y1


def test_a_graph_that_fits_is_not_wrapped():
    a, b, c, z = tensor_z()
    assert draw_graph(z).get_size_inches()[0] == draw_graph(z, max_width=None).get_size_inches()[0]


def test_names_label_tensors_by_identity():
    W = Tensor(np.ones((3, 2)), requires_grad=True)
    x = Tensor(np.ones(2), requires_grad=True)
    twin = Tensor(np.ones(3), requires_grad=True)  # unnamed: its box starts with its shape
    figure = rendered(draw_graph((W @ x + twin).sum(), names={"W": W, "x": x}))
    first_lines = sorted(t.get_text().split("\n")[0] for t in texts(figure, "value"))
    assert "W" in first_lines and "x" in first_lines
    assert "shape (3,)" in first_lines
