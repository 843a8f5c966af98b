"""Checks for notebook 09, time and memory: backpropagation through time, clipping, checkpoints.

* :func:`check_bptt` checks backpropagation through time written by hand in NumPy for the cell
  ``h_t = tanh(h_{t-1} @ W + x_t @ U + b)``: the gradients of ``W``, ``U``, ``b`` and ``h_0``
  against the engine and against central differences, with hints for the usual slips (a
  derivative taken at the wrong step, a gradient not carried back, a sum over time overwritten).
* :func:`check_clip_grad_norm` checks clipping by global norm on parameters with given gradients.
* :func:`check_row_reader` checks a recurrent classifier's ``forward`` that reads an image row by
  row, against the same cell and head run by the check, values and gradients.
* :func:`check_checkpoint` checks a gradient-checkpointing ``Function``: the output and every
  gradient of a checkpointed chain equal those of the plain chain;
  :func:`check_checkpoint_memory` checks that it also keeps less memory (``tracemalloc`` peaks).
* :func:`clip_grad_norm_or_reference` and :func:`checkpoint_or_reference` hand back the learner's
  piece when it passes its check and the reference otherwise.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable, Sequence

import numpy as np

from .. import nn
from ..checkpoint import Checkpoint as ReferenceCheckpoint
from ..checkpoint import checkpoint as reference_checkpoint
from ..gradcheck import numeric_grad
from ..optim import clip_grad_norm as reference_clip_grad_norm
from ..tensor import Function, Tensor, _backpropagate, grad, no_grad
from .core import CheckFailure, assert_close, own_work, random_array, yours_or_reference
from .training import _call, _matching_hint

__all__ = [
    "check_bptt",
    "check_clip_grad_norm",
    "check_row_reader",
    "check_checkpoint",
    "check_checkpoint_memory",
    "clip_grad_norm_or_reference",
    "checkpoint_or_reference",
    "rnn_states",
    "chain_segment",
    "peak_memory",
]

# The engine's backward pass in each form a learner could call: BPTT "by hand" may not use it.
_ENGINE_BACKWARD = (Tensor.backward, _backpropagate, grad)


# --- the RNN cell, unrolled ------------------------------------------------------------------------


def rnn_states(xs: np.ndarray, h0: np.ndarray, W: np.ndarray, U: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Run ``h_t = tanh(h_{t-1} @ W + x_t @ U + b)`` over ``xs (T, N, D)`` from ``h0 (N, H)``.

    Returns every state, ``h_0`` included: shape ``(T + 1, N, H)``.
    """
    states = [np.asarray(h0)]
    for x in xs:
        states.append(np.tanh(states[-1] @ W + x @ U + b))
    return np.stack(states)


def _bptt(xs: np.ndarray, hs: np.ndarray, W: np.ndarray, grad_hs: np.ndarray,
          mistake: str | None = None) -> tuple[np.ndarray, ...]:
    """Backpropagation through time in NumPy; ``mistake`` makes one usual slip (for the hints)."""
    grad_W, grad_U = np.zeros_like(W), np.zeros((xs.shape[2], W.shape[0]))
    grad_b, grad_h = np.zeros(W.shape[0]), np.zeros_like(hs[0])
    for t in range(len(xs), 0, -1):
        if mistake == "last_only":
            grad_h = grad_h + (grad_hs[t - 1] if t == len(xs) else 0)
        elif mistake == "no_carry":
            grad_h = grad_hs[t - 1]
        else:
            grad_h = grad_h + grad_hs[t - 1]
        h = hs[t - 1] if mistake == "previous_state" else hs[t]
        derivative = 1 - np.tanh(h) ** 2 if mistake == "tanh_again" else 1 - h**2
        grad_a = grad_h * derivative
        if mistake == "overwrite":
            grad_W, grad_U, grad_b = hs[t - 1].T @ grad_a, xs[t - 1].T @ grad_a, grad_a.sum(axis=0)
        else:
            grad_W = grad_W + hs[t - 1].T @ grad_a
            grad_U = grad_U + xs[t - 1].T @ grad_a
            grad_b = grad_b + grad_a.sum(axis=0)
        grad_h = grad_a @ (W if mistake == "untransposed" else W.T)
    return grad_W, grad_U, grad_b, grad_h


_BPTT_HINTS = {
    "previous_state": "tanh's derivative at step t is 1 - h_t**2 with h_t = hs[t], the state that step "
                      "made; hs[t - 1] is the state it read.",
    "tanh_again": "hs[t] already is tanh(a_t), so the derivative is 1 - hs[t]**2; 1 - np.tanh(hs[t])**2 "
                  "applies tanh twice.",
    "no_carry": "the gradient reaching h_{t-1} has two parts: the loss's own, grad_hs[t - 1], plus what "
                "flows back from step t through W, (grad at a_t) @ W.T. Carry the second one back and add.",
    "last_only": "the loss reads every state, so add grad_hs[t - 1] at every step on the way back, not "
                 "only at the last one.",
    "overwrite": "W, U and b are used at every step, so their gradients are sums over the steps (the fan-out "
                 "of notebook 02): add each step's share with +=, do not overwrite.",
    "untransposed": "the gradient flows back to h_{t-1} through W transposed: a_t = h_{t-1} @ W + ..., so "
                    "d/dh_{t-1} is (grad at a_t) @ W.T.",
}

BPTT_NAMES = ("grad_W", "grad_U", "grad_b", "grad_h0")

#: (steps T, batch N, inputs D, hidden H) of each case the visible check runs.
BPTT_CASES = ((4, 3, 2, 5), (1, 2, 3, 4), (10, 2, 3, 3))


def _engine_bptt(xs, h0, W, U, b, grad_hs) -> list[np.ndarray]:
    """The four gradients of ``sum_t sum(grad_hs[t] * h_{t+1})`` from the reference engine."""
    leaves = [Tensor(a, requires_grad=True) for a in (W, U, b, h0)]
    W_t, U_t, b_t, h = leaves
    loss = Tensor(0.0)
    for x, g in zip(xs, grad_hs):
        h = (h @ W_t + x @ U_t + b_t).tanh()
        loss = loss + (h * g).sum()
    loss.backward()
    return [leaf.grad for leaf in leaves]


def _check_bptt_case(bptt: Callable[..., Any], shape: Sequence[int], rng: np.random.Generator,
                     numeric: bool) -> None:
    T, N, D, H = shape
    xs = random_array((T, N, D), rng)
    W = rng.standard_normal((H, H)) / np.sqrt(H)
    U, b = rng.standard_normal((D, H)) / np.sqrt(D), rng.uniform(-0.5, 0.5, H)
    h0 = rng.uniform(-0.5, 0.5, (N, H))
    hs = rnn_states(xs, h0, W, U, b)
    grad_hs = rng.standard_normal((T, N, H))
    text = f"bptt(xs, hs, W, U, grad_hs) with T={T} steps, N={N}, D={D}, H={H}"
    got = _call(text, bptt, xs.copy(), hs.copy(), W.copy(), U.copy(), grad_hs.copy())
    if not isinstance(got, (tuple, list)) or len(got) != 4:
        raise CheckFailure(
            f"{text} returned {type(got).__name__}"
            + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else "")
            + ": it should return four arrays, (grad_W, grad_U, grad_b, grad_h0)."
        )
    expected = _engine_bptt(xs, h0, W, U, b, grad_hs)
    if numeric:  # the engine's numbers, confirmed by central differences on this small case

        def loss(W_, U_, b_, h0_):
            states = rnn_states(xs, h0_, W_, U_, b_)
            return float(np.sum(states[1:] * grad_hs))

        for value, check in zip(expected, numeric_grad(loss, W, U, b, h0)):
            np.testing.assert_allclose(value, check, rtol=1e-5, atol=1e-7)
    wrong = {m: _bptt(xs, hs, W, grad_hs, m) for m in _BPTT_HINTS}
    for position, (name, value, right) in enumerate(zip(BPTT_NAMES, got, expected)):
        value = value.data if isinstance(value, Tensor) else value
        hint = _matching_hint(value, [(wrong[m][position], h) for m, h in _BPTT_HINTS.items()])
        if hint is None and name == "grad_b" and np.shape(value) == (N, H):
            hint = "b is added to every row of the batch, so its gradient sums over the batch: axis=0."
        assert_close(value, right, f"{name} from {text}", hint=hint)


def check_bptt(bptt: Callable[..., Any], *, cases: Sequence[Sequence[int]] = BPTT_CASES, seed: int = 0) -> None:
    """Check ``bptt(xs, hs, W, U, grad_hs) -> (grad_W, grad_U, grad_b, grad_h0)`` by hand in NumPy.

    ``xs (T, N, D)`` are the inputs, ``hs (T + 1, N, H)`` the states from ``h_0`` on, and
    ``grad_hs (T, N, H)`` the gradient the loss sends to each state ``h_1 .. h_T`` directly.
    Each case's four gradients must match the engine's (and, on the first case, central
    differences). The engine's backward may not be used: this is the backward written by hand.
    """
    with own_work("bptt", bptt, None, also=_ENGINE_BACKWARD):
        rng = np.random.default_rng(seed)
        for index, shape in enumerate(cases):
            _check_bptt_case(bptt, shape, rng, numeric=index == 0)


# --- clipping by global norm -----------------------------------------------------------------------


def _clip_case(shapes, scale, rng):
    params = [nn.Parameter(rng.standard_normal(shape)) for shape in shapes]
    for p in params[:-1]:
        p.grad = scale * rng.standard_normal(p.shape)
    params[-1].grad = None  # a parameter the loss did not reach
    return params


def check_clip_grad_norm(clip: Callable[..., Any], *, seed: int = 0) -> None:
    """Check ``clip(params, max_norm) -> norm``: scale every ``.grad`` by one common factor so that
    their global norm is at most ``max_norm``, skip a ``.grad`` of None, leave gradients already
    small enough alone, and return the global norm from before."""
    with own_work("clip_grad_norm", clip, reference_clip_grad_norm):
        rng = np.random.default_rng(seed)
        shapes = [(3, 4), (4,), (2, 2, 3), (5,)]
        for scale, max_norm in ((3.0, 1.0), (0.05, 1.0), (2.0, 5.0)):
            params = _clip_case(shapes, scale, rng)
            before = [None if p.grad is None else p.grad.copy() for p in params]
            norm = np.sqrt(sum(np.sum(g**2) for g in before if g is not None))
            factor = min(1.0, max_norm / norm)
            text = f"clip_grad_norm(params, max_norm={max_norm}) on gradients of global norm {norm:.4g}"
            got = _call(text, clip, params, max_norm, hint=(
                "the last parameter's .grad is None (the loss did not reach it): skip it."))
            for i, (p, g) in enumerate(zip(params, before)):
                if g is None:
                    if p.grad is not None:
                        raise CheckFailure(f"After {text}, parameter {i}'s .grad was None and is now "
                                           "set.\n  Hint: skip parameters whose .grad is None.")
                    continue
                own = min(1.0, max_norm / np.sqrt(np.sum(g**2)))
                assert_close(p.grad, g * factor, f"parameter {i}'s .grad after {text}", hint=_matching_hint(
                    p.grad, [
                        (g * own, "each gradient was clipped by its own norm; the global norm treats all "
                                  "gradients as one vector: sqrt of the sum of every grad's squares."),
                        (g * max_norm / norm, "gradients already within max_norm were scaled up; only "
                                              "scale when the global norm exceeds max_norm."),
                        (g, "the gradients were not changed: multiply each p.grad by max_norm / norm "
                            "(p.grad *= ... changes it in place)."),
                    ]))
            try:
                norm_got = float(got)
            except (TypeError, ValueError):
                raise CheckFailure(f"{text} returned {type(got).__name__}; it should return the global "
                                   "norm before clipping, a number.") from None
            assert_close(norm_got, norm, f"The norm returned by {text}", hint=_matching_hint(norm_got, [
                (norm * factor, "that is the norm after clipping; return the one from before, which "
                                "says how large the gradient was."),
                (norm**2, "that is the squared norm: take its square root."),
            ]))


def clip_grad_norm_or_reference(clip: Callable[..., Any]) -> Callable[..., Any]:
    """``clip`` if it passes :func:`check_clip_grad_norm`, else :func:`autodiff_ref.optim.clip_grad_norm`."""
    return yours_or_reference("clip_grad_norm", clip, lambda: check_clip_grad_norm(clip),
                              reference_clip_grad_norm, "autodiff_ref.optim.clip_grad_norm")


# --- reading an image row by row -------------------------------------------------------------------


def _read(cell: nn.RNNCell, head: nn.Linear, images: np.ndarray, how: str = "rows") -> Tensor:
    """What the reader should compute (``how="rows"``) with float64 copies of its parameters,
    or a usual mistake: columns, rows from the bottom, a state that is not carried."""
    W, U, b = (Tensor(p.data.astype(np.float64), requires_grad=True)
               for p in (cell.weight_hh, cell.weight_ih, cell.bias))
    V, c = (Tensor(p.data.astype(np.float64), requires_grad=True) for p in (head.weight, head.bias))
    grid = np.asarray(images, dtype=np.float64).reshape(len(images), 8, 8)
    sequence = {"rows": grid, "columns": grid.transpose(0, 2, 1), "bottom_up": grid[:, ::-1]}.get(how, grid)
    h = Tensor(np.zeros((len(images), cell.hidden_size)))
    zero = h
    for t in range(8):
        h = (sequence[:, t] @ U + (zero if how == "not_carried" else h) @ W + b).tanh()
    return h @ V + c, (W, U, b, V, c)


_READER_HINTS = {
    "columns": "the reader went through the image column by column: images.reshape(N, 8, 8)[:, t] "
               "is row t, [:, :, t] is column t.",
    "bottom_up": "the rows were read from the bottom up; read row 0 (the top) first.",
    "not_carried": "each step started again from zeros: feed the state a step returns into the next "
                   "step, h = self.cell(row, h).",
}


def check_row_reader(ReaderClass: type, *, seed: int = 0, hidden_size: int = 6) -> None:
    """Check ``ReaderClass(hidden_size=, rng=)``'s ``forward(images (N, 64)) -> logits (N, 10)``:
    its ``cell`` reads the 8 rows of each image top to bottom, from a zero state, and its ``head``
    scores the last state. Values and gradients are compared with the same cell and head run by
    the check."""
    with own_work("RowReader", ReaderClass, nn.RNNClassifier, methods=("forward",)):
        rng = np.random.default_rng(seed)
        reader = _call(f"RowReader(hidden_size={hidden_size}, rng={seed})", ReaderClass,
                       hidden_size=hidden_size, rng=seed)
        images = rng.uniform(0, 1, (5, 64)).astype(reader.cell.bias.dtype)
        text = f"RowReader.forward(images) for images of shape {images.shape}"
        reader.zero_grad()
        logits = _call(text, reader, images)
        if not isinstance(logits, Tensor):
            raise CheckFailure(f"{text} returned a {type(logits).__name__}, not a Tensor.\n  Hint: "
                               "return self.head(h): the optimizer needs a graph to the parameters.")
        expected, copies = _read(reader.cell, reader.head, images)
        mistakes = [(_read(reader.cell, reader.head, images, how)[0].data, hint)
                    for how, hint in _READER_HINTS.items()]
        tolerance = {"rtol": 1e-4, "atol": 1e-5}  # the reader's float32 against float64
        assert_close(logits.data, expected.data, f"The logits from {text}", **tolerance,
                     hint=_close_hint(logits.data, mistakes))
        weights = rng.standard_normal(expected.shape)
        (expected * weights).sum().backward()
        _call(f"backward() through {text}", lambda: (logits * weights.astype(logits.dtype)).sum().backward())
        names = ("cell.weight_hh", "cell.weight_ih", "cell.bias", "head.weight", "head.bias")
        params = (reader.cell.weight_hh, reader.cell.weight_ih, reader.cell.bias, reader.head.weight,
                  reader.head.bias)
        for name, p, copy in zip(names, params, copies):
            if p.grad is None:
                raise CheckFailure(f"After backward() through {text}, {name} has no gradient.\n  Hint: "
                                   "compute the logits from the cell and the head with Tensor operations.")
            assert_close(p.grad, copy.grad, f"The gradient of {name} after backward() through {text}",
                         **tolerance)


def _close_hint(got: np.ndarray, candidates: list[tuple[np.ndarray, str]]) -> str | None:
    """The hint of the mistake ``got`` equals, to float32 precision."""
    for wrong, hint in candidates:
        if np.shape(wrong) == np.shape(got) and np.allclose(got, wrong, rtol=1e-4, atol=1e-5):
            return hint
    return None


# --- gradient checkpointing ------------------------------------------------------------------------


def chain_segment(h: Tensor, W: Tensor, layers: int) -> Tensor:
    """``layers`` blocks ``h -> tanh(h @ W)`` with one shared ``W``: a segment of a deep chain."""
    for _ in range(layers):
        h = (h @ W).tanh()
    return h


def _run_chain(h0: np.ndarray, W0: np.ndarray, depth: int, segments: int,
               CheckpointClass: type | None, output_weights: np.ndarray) -> tuple[Any, ...]:
    """Output and gradients (h0, W) of ``sum(w * chain(h0))``, and how often a segment ran:
    ``segments`` checkpointed segments (``CheckpointClass=None``: the plain chain)."""
    h, W = Tensor(h0, requires_grad=True), Tensor(W0, requires_grad=True)
    out, layers, runs = h, depth // segments, [0]

    def segment(x: Tensor, w: Tensor) -> Tensor:
        runs[0] += 1
        if runs[0] > 2 * segments:  # more than once forward and once backward: stop it running away
            raise CheckFailure(_RUNS_AGAIN.format(runs=runs[0], segments=segments))
        return chain_segment(x, w, layers)

    for _ in range(segments):
        out = segment(out, W) if CheckpointClass is None else CheckpointClass(segment)(out, W)
    (out * output_weights).sum().backward()
    return out.data, h.grad, W.grad, runs[0]


_RUNS_AGAIN = (
    "The segments of a chain in {segments} checkpointed segments ran {runs} times (and counting); each "
    "should run twice, once in the forward and once in its backward.\n  Hint: backward ran f on node.inputs "
    "themselves, so the walk back from f's output went on into the chain before the segment, running "
    "its checkpoints' backward again. Recompute on fresh leaves, Tensor(x.data, requires_grad=True): "
    "the walk stops at them."
)


_IGNORED_OUT_GRAD = ("the backward ignored out_grad: it must pass back out_grad times f's Jacobian, so "
                     "use out_grad as the seed: the gradient of (f(...) * out_grad).sum().")


_NOT_RECORDED = (
    "the engine runs every backward under no_grad(), so nothing computed in it is recorded unless you "
    "say so: compute f's output, and anything you call backward() on, inside `with enable_grad():`."
)

_COUNTED_TWICE = (
    "the gradient was counted twice: backward ran f on node.inputs themselves, so its backward() added to "
    "their .grad already, and the engine then added what backward returned. Recompute on fresh leaves, "
    "Tensor(x.data, requires_grad=True), and return their gradients."
)


def _checkpoint_class(CheckpointClass: Any) -> None:
    if not (isinstance(CheckpointClass, type) and issubclass(CheckpointClass, Function)):
        raise CheckFailure(
            f"Checkpoint should be a class that subclasses Function, got {CheckpointClass!r}.\n  Hint: "
            "class Checkpoint(Function): with forward(self, *arrays) and backward(self, out_grad, node)."
        )


def check_checkpoint(CheckpointClass: type, *, seed: int = 0) -> None:
    """Check ``CheckpointClass(f)(*inputs)``: a chain ``tanh(h @ W)`` cut into checkpointed segments
    gives the plain chain's output and the same gradients for ``h0`` and the shared ``W``; so
    does a segment whose input does not require grad, and one used twice."""
    _checkpoint_class(CheckpointClass)
    with own_work("Checkpoint", CheckpointClass, ReferenceCheckpoint, methods=("forward", "backward"),
                  also=(reference_checkpoint,)):
        rng = np.random.default_rng(seed)
        for depth, segments in ((4, 1), (6, 3), (8, 4)):
            h0, W0 = rng.standard_normal((3, 4)), rng.standard_normal((4, 4)) / 2
            weights = rng.standard_normal((3, 4))
            text = f"a chain of {depth} tanh(h @ W) blocks in {segments} checkpointed segments"
            try:
                got = _call(f"the forward and backward of {text}", _run_chain, h0, W0, depth, segments,
                            CheckpointClass, weights)
            except CheckFailure as failure:
                if "does not require grad" not in str(failure):
                    raise
                raise CheckFailure(f"{failure}\n  Hint: {_NOT_RECORDED}") from failure
            expected = _run_chain(h0, W0, depth, segments, None, weights)
            ones = _run_chain(h0, W0, depth, segments, None, np.ones_like(weights))
            assert_close(got[0], expected[0], f"The output of {text}", hint=(
                "the forward should return f's value: run self.f on Tensors of the arrays, under "
                "no_grad(), and return the result's .data."))
            for position, name in ((1, "h0"), (2, "W")):
                if got[position] is None:
                    raise CheckFailure(f"After backward() through {text}, {name} has no gradient.\n  Hint: "
                                       "backward returns one gradient per input of the op, in order.")
                hint = _matching_hint(got[position], [
                    (ones[position] if segments == 1 else np.nan, _IGNORED_OUT_GRAD),
                    (2 * expected[position] if segments == 1 else np.nan, _COUNTED_TWICE),
                ])
                assert_close(got[position], expected[position],
                             f"The gradient of {name} after backward() through {text}", hint=hint)
        x0 = rng.standard_normal((2, 3))
        text = "Checkpoint(lambda x, y: (x * y).tanh())(x, x) (one tensor used twice)"
        x = Tensor(x0, requires_grad=True)
        _call(f"backward() through {text}", lambda: CheckpointClass(lambda a, c: (a * c).tanh())(x, x).sum().backward())
        assert_close(x.grad, 2 * x0 * (1 - np.tanh(x0 * x0) ** 2), f"The gradient of x after {text}")


def peak_memory(run: Callable[[], Any]) -> int:
    """The peak of memory allocated while ``run()`` runs, in bytes, as ``tracemalloc`` sees it
    (NumPy reports its arrays to it)."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        if not tracing:
            tracemalloc.stop()


def check_checkpoint_memory(CheckpointClass: type, *, depth: int = 64, segments: int = 8) -> tuple[int, int]:
    """Check that a chain of ``depth`` blocks in ``segments`` checkpointed segments peaks at no more
    than half the memory of the plain chain, forward and backward. Returns both peaks in bytes."""
    _checkpoint_class(CheckpointClass)
    rng = np.random.default_rng(0)
    h0, W0 = rng.standard_normal((64, 128)), rng.standard_normal((128, 128)) / np.sqrt(128)
    weights = np.ones((64, 128))
    plain = peak_memory(lambda: _run_chain(h0, W0, depth, segments, None, weights))
    with own_work("Checkpoint", CheckpointClass, ReferenceCheckpoint, methods=("forward", "backward"),
                  also=(reference_checkpoint,)):
        text = f"a chain of {depth} tanh(h @ W) blocks in {segments} checkpointed segments"
        checkpointed = peak_memory(lambda: _call(f"the forward and backward of {text}", _run_chain, h0, W0,
                                                 depth, segments, CheckpointClass, weights))
    if checkpointed > 0.5 * plain:
        if _returns_graphs(CheckpointClass):
            hint = ("the gradients your backward returns still carry the graph they were computed with "
                    "(grad() records one, so that it can be differentiated again), and through them every "
                    "recomputed segment stays alive until the end. Return plain tensors: Tensor(leaf.grad), "
                    "or .detach() each gradient.")
        else:
            hint = ("the forward must not record a graph: run self.f under no_grad() on plain Tensors of the "
                    "arrays, and keep nothing but the result's .data.")
        raise CheckFailure(
            f"The forward and backward of {text} peaked at {checkpointed / 2**20:.1f} MiB, the plain chain at "
            f"{plain / 2**20:.1f} MiB; checkpointing should keep at most half as much "
            f"({checkpointed / plain:.0%} now).\n  Hint: {hint}"
        )
    return plain, checkpointed


def _returns_graphs(CheckpointClass: type) -> bool:
    """Whether the op's backward, in a plain backward pass, returns gradients that hold a graph."""
    x = Tensor(np.full((2, 2), 0.5), requires_grad=True)
    try:
        out = CheckpointClass(lambda a: (a * a).tanh())(x)
        with no_grad():
            grads = out.op.backward(Tensor(np.ones((2, 2))), out)
        return any(isinstance(g, Tensor) and g.requires_grad for g in grads)
    except Exception:  # the check that ran before has said what is wrong with it
        return False


def checkpoint_or_reference(CheckpointClass: type) -> type:
    """``CheckpointClass`` if it passes both checkpoint checks, else :class:`autodiff_ref.checkpoint.Checkpoint`."""

    def both() -> None:
        check_checkpoint(CheckpointClass)
        check_checkpoint_memory(CheckpointClass)

    return yours_or_reference("Checkpoint", CheckpointClass, both, ReferenceCheckpoint,
                              "autodiff_ref.checkpoint.Checkpoint")
