"""The workloads: each builds the same computation for every installed engine.

Engines: ``numpy floor`` (forward and backward written by hand, no graph: the practical floor),
``autodiff_ref``, and, when installed (``pip install -e ".[bench]"``), PyTorch on the CPU, HIPS
autograd and micrograd.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

import numpy as np

from autodiff_ref import Tensor
from autodiff_ref.gradcheck import gradcheck
from autodiff_ref.nn import cross_entropy
from autodiff_ref.ops import affine

from .harness import Case, Workload

LEARNING_RATE = 0.01


def _optional(name: str, threads: int):
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if name == "torch":
        module.set_num_threads(threads)
    return module


# -- 1. one SGD step of an MLP -------------------------------------------------------------------
def _mlp_problem(sizes: tuple[int, int, int], batch: int, dtype) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = sizes
    X = rng.standard_normal((batch, n_in)).astype(dtype)
    y = rng.integers(0, n_out, batch)
    params = [
        (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(dtype),
        np.full(n_hidden, 0.01, dtype),
        (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2 / n_hidden)).astype(dtype),
        np.zeros(n_out, dtype),
    ]
    return X, y, params


def _mlp_floor(X, y, params):
    """Forward and backward of relu MLP + mean cross-entropy, by hand."""
    W1, b1, W2, b2 = params
    rows = np.arange(len(y))
    h = X @ W1 + b1
    a = np.maximum(h, 0)
    z = a @ W2 + b2
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[rows, y].mean()
    dz = np.exp(log_p)
    dz[rows, y] -= 1
    dz /= len(y)
    da = dz @ W2.T
    dh = da * (h > 0)
    return loss, [X.T @ dh, dh.sum(axis=0), a.T @ dz, dz.sum(axis=0)]


def _sgd_case(engine: str, loss_and_grads: Callable, params: list, update: Callable) -> Case:
    def step():
        _, grads = loss_and_grads(params)
        update(params, grads)

    initial = [p.copy() if hasattr(p, "copy") else p.clone() for p in params]
    return Case(engine, step, result=lambda: loss_and_grads([p.copy() if hasattr(p, "copy") else p.clone() for p in initial]))


def mlp_workloads(threads: int) -> list[Workload]:
    torch = _optional("torch", threads)
    autograd = _optional("autograd", threads)
    workloads = []
    for sizes, batch, target in (((64, 128, 10), 128, 1.5), ((784, 256, 10), 256, 1.1)):
        for dtype in (np.float64, np.float32):
            X, y, params = _mlp_problem(sizes, batch, dtype)
            cases = [_floor_mlp_case(X, y, params), _ours_mlp_case(X, y, params)]
            if torch is not None:
                cases.append(_torch_mlp_case(torch, X, y, params))
            if autograd is not None:
                cases.append(_autograd_mlp_case(X, y, params))
            name = f"MLP {'-'.join(map(str, sizes))} batch {batch}, one SGD step, {np.dtype(dtype).name}"
            rtol = 1e-9 if dtype == np.float64 else 1e-4
            workloads.append(Workload(name, cases, unit="step", rtol=rtol, target=target))
    return workloads


def _floor_mlp_case(X, y, params) -> Case:
    def update(ps, grads):
        for p, g in zip(ps, grads):
            p -= LEARNING_RATE * g

    return _sgd_case("numpy floor", lambda ps: _mlp_floor(X, y, ps), [p.copy() for p in params], update)


def _ours_mlp_case(X, y, params) -> Case:
    inputs = Tensor(X)

    def loss_and_grads(ps):
        tensors = [p if isinstance(p, Tensor) else Tensor(p, requires_grad=True) for p in ps]
        W1, b1, W2, b2 = tensors
        for t in tensors:
            t.grad = None
        # Each engine computes its layers and loss with its own library's functions, as a user
        # would: here what nn.Linear and nn.cross_entropy call.
        logits = affine(affine(inputs, W1, b1).relu(), W2, b2)
        loss = cross_entropy(logits, y)
        loss.backward()
        return loss.item(), [t.grad for t in tensors]

    def update(ps, grads):
        for p, g in zip(ps, grads):
            p.data -= LEARNING_RATE * g

    tensors = [Tensor(p, requires_grad=True) for p in params]
    case = Case("autodiff_ref", lambda: update(tensors, loss_and_grads(tensors)[1]))
    case.result = lambda: loss_and_grads([p.copy() for p in params])
    return case


def _torch_mlp_case(torch, X, y, params) -> Case:
    functional = importlib.import_module("torch.nn.functional")
    inputs, labels = torch.from_numpy(X), torch.from_numpy(y)

    def loss_and_grads(tensors):
        for t in tensors:
            t.grad = None
        W1, b1, W2, b2 = tensors
        hidden = torch.relu(functional.linear(inputs, W1.T, b1))  # linear() takes (out, in) weights
        loss = functional.cross_entropy(functional.linear(hidden, W2.T, b2), labels)
        loss.backward()
        return loss.item(), [t.grad.numpy() for t in tensors]

    tensors = [torch.tensor(p, requires_grad=True) for p in params]

    def step():
        loss_and_grads(tensors)
        with torch.no_grad():
            for t in tensors:
                t -= LEARNING_RATE * t.grad

    return Case("torch", step, result=lambda: loss_and_grads([torch.tensor(p, requires_grad=True) for p in params]))


def _autograd_mlp_case(X, y, params) -> Case:
    anp = importlib.import_module("autograd.numpy")
    value_and_grad = importlib.import_module("autograd").value_and_grad
    logsumexp = importlib.import_module("autograd.scipy.special").logsumexp
    rows = np.arange(len(y))

    def loss(ps):
        W1, b1, W2, b2 = ps
        z = anp.dot(anp.maximum(anp.dot(X, W1) + b1, 0), W2) + b2
        return -anp.mean((z - logsumexp(z, axis=1, keepdims=True))[rows, y])

    loss_and_grad = value_and_grad(loss)
    state = [p.copy() for p in params]

    def step():
        _, grads = loss_and_grad(state)
        state[:] = [p - LEARNING_RATE * g for p, g in zip(state, grads)]

    return Case("autograd", step, result=lambda: (lambda v, g: (v, list(g)))(*loss_and_grad([p.copy() for p in params])))


# -- 2. scalar engines ---------------------------------------------------------------------------
SCALAR_LAYERS = (2, 16, 16, 1)
SCALAR_SAMPLES = 16


def _scalar_problem():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (SCALAR_SAMPLES, SCALAR_LAYERS[0])).tolist()
    Y = rng.uniform(-1, 1, SCALAR_SAMPLES).tolist()
    weights = [
        (rng.standard_normal((n_out, n_in)) * 0.5).tolist()
        for n_in, n_out in zip(SCALAR_LAYERS[:-1], SCALAR_LAYERS[1:])
    ]
    biases = [[0.1] * n_out for n_out in SCALAR_LAYERS[1:]]
    return X, Y, weights, biases


def _scalar_mlp_loss(weights, biases, X, Y, relu):
    """Squared error of a relu MLP, built one scalar operation at a time (any Value-like class)."""
    loss = 0.0
    for x, target in zip(X, Y):
        activations = x
        for layer, (W, b) in enumerate(zip(weights, biases)):
            outputs = []
            for row, bias in zip(W, b):
                total = bias
                for w, a in zip(row, activations):
                    total = total + w * a
                outputs.append(relu(total) if layer < len(weights) - 1 else total)
            activations = outputs
        error = activations[0] - target
        loss = error * error + loss
    return loss


def _scalar_case(engine: str, make: Callable[[float], object], relu, grad_of, backward, X, Y, weights, biases) -> Case:
    def loss_and_grads():
        W = [[[make(w) for w in row] for row in layer] for layer in weights]
        b = [[make(v) for v in layer] for layer in biases]
        loss = _scalar_mlp_loss(W, b, X, Y, relu)
        backward(loss)
        flat = [p for layer in W for row in layer for p in row] + [p for layer in b for p in layer]
        return float(loss.data if hasattr(loss, "data") and not hasattr(loss, "item") else loss.item()), [
            np.array([grad_of(p) for p in flat])
        ]

    return Case(engine, loss_and_grads, result=loss_and_grads)


def _scalar_floor(X, Y, weights, biases) -> Case:
    """The same MLP vectorised over its weights but looping over samples, by hand."""
    Ws = [np.array(W) for W in weights]
    bs = [np.array(b) for b in biases]

    def loss_and_grads():
        grads_W = [np.zeros_like(W) for W in Ws]
        grads_b = [np.zeros_like(b) for b in bs]
        loss = 0.0
        for x, target in zip(X, Y):
            acts, pre = [np.array(x)], []
            for layer, (W, b) in enumerate(zip(Ws, bs)):
                pre.append(W @ acts[-1] + b)
                acts.append(np.maximum(pre[-1], 0) if layer < len(Ws) - 1 else pre[-1])
            error = acts[-1][0] - target
            loss += error * error
            delta = np.array([2 * error])
            for layer in reversed(range(len(Ws))):
                if layer < len(Ws) - 1:
                    delta = delta * (pre[layer] > 0)
                grads_W[layer] += np.outer(delta, acts[layer])
                grads_b[layer] += delta
                delta = Ws[layer].T @ delta
        flat = np.concatenate([g.ravel() for g in grads_W] + [g.ravel() for g in grads_b])
        return loss, [flat]

    return Case("numpy floor", loss_and_grads, result=loss_and_grads)


def scalar_workloads(threads: int) -> list[Workload]:
    from autodiff_ref.scalar import Value

    X, Y, weights, biases = _scalar_problem()
    nodes = _count_value_nodes(Value, X, Y, weights, biases)
    cases = [
        _scalar_floor(X, Y, weights, biases),
        _scalar_case("autodiff_ref", Value, lambda v: v.relu(), lambda p: p.grad, lambda l: l.backward(), X, Y, weights, biases),
    ]
    micrograd = _optional("micrograd.engine", threads)
    if micrograd is not None:
        cases.append(
            _scalar_case("micrograd", micrograd.Value, lambda v: v.relu(), lambda p: p.grad, lambda l: l.backward(), X, Y, weights, biases)
        )
    torch = _optional("torch", threads)
    if torch is not None:
        cases.append(
            _scalar_case(
                "torch 0-d",
                lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True),
                torch.relu,
                lambda p: p.grad.item(),
                lambda l: l.backward(),
                X, Y, weights, biases,
            )
        )
    for case in cases[1:]:
        case.per = nodes
    cases[0].per = nodes
    mlp = Workload(
        f"scalar MLP {'-'.join(map(str, SCALAR_LAYERS))} on {SCALAR_SAMPLES} samples ({nodes} nodes), build + backward",
        cases,
        unit="node",
        target=None,
        notes=["target: autodiff_ref no slower than micrograd"],
    )
    return [mlp, _chain_workload(Value, micrograd, torch)]


def _count_value_nodes(Value, X, Y, weights, biases) -> int:
    from autodiff_ref.graph import topological_order

    loss = _scalar_mlp_loss([[[Value(w) for w in row] for row in W] for W in weights], [[Value(v) for v in b] for b in biases], X, Y, lambda v: v.relu())
    return len(topological_order(loss))


CHAIN_DEPTH = 10_000


def _chain(start, depth: int):
    """``depth`` operations, each on the previous result: alternately ``* 0.9999`` and ``+ 0.001``."""
    z = start
    for i in range(depth):
        z = z * 0.9999 if i % 2 == 0 else z + 0.001
    return z


def _chain_workload(Value, micrograd, torch) -> Workload:
    def floor():
        value, grad = 0.5, 1.0
        for i in range(CHAIN_DEPTH):
            value = value * 0.9999 if i % 2 == 0 else value + 0.001
        for i in reversed(range(CHAIN_DEPTH)):
            grad = grad * 0.9999 if i % 2 == 0 else grad
        return value, [np.array(grad)]

    def value_engine(make, grad_of):
        def run():
            x = make(0.5)
            z = _chain(x, CHAIN_DEPTH)
            z.backward()
            return float(z.data if not hasattr(z, "item") else z.item()), [np.array(grad_of(x))]

        return run

    cases = [Case("numpy floor", floor, result=floor, per=CHAIN_DEPTH)]
    ours = value_engine(Value, lambda x: x.grad)
    cases.append(Case("autodiff_ref", ours, result=ours, per=CHAIN_DEPTH))
    notes = ["autodiff_ref's backward is iterative: no recursion limit is touched"]
    if micrograd is not None:
        notes.append("micrograd cannot run it: its recursive topological sort exceeds Python's recursion limit")
    if torch is not None:
        run = value_engine(lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True), lambda x: x.grad.item())
        cases.append(Case("torch 0-d", run, result=run, per=CHAIN_DEPTH))
    return Workload(f"scalar chain {CHAIN_DEPTH} ops deep, build + backward", cases, unit="op", notes=notes)


# -- 3. a chain of tiny tensor ops ---------------------------------------------------------------
TINY_STEPS = 50  # each step is z * y + x: two ops, so 100 ops in all


def tiny_chain_workload(threads: int) -> Workload:
    rng = np.random.default_rng(2)
    x0, y0 = rng.uniform(-1, 1, (4, 4)), rng.uniform(0.5, 1.0, (4, 4))
    ops = 2 * TINY_STEPS

    def floor():
        z, history = x0, []
        for _ in range(TINY_STEPS):
            history.append(z)
            z = z * y0 + x0
        grad_z, grad_x, grad_y = np.ones_like(z), np.zeros_like(x0), np.zeros_like(y0)
        for previous in reversed(history):
            grad_x += grad_z
            grad_y += grad_z * previous
            grad_z = grad_z * y0
        return z.sum(), [grad_x + grad_z, grad_y]

    def ours():
        x, y = Tensor(x0, requires_grad=True), Tensor(y0, requires_grad=True)
        z = x
        for _ in range(TINY_STEPS):
            z = z * y + x
        loss = z.sum()
        loss.backward()
        return loss.item(), [x.grad, y.grad]

    cases = [Case("numpy floor", floor, result=floor, per=ops), Case("autodiff_ref", ours, result=ours, per=ops)]
    torch = _optional("torch", threads)
    if torch is not None:
        def torch_run():
            x, y = torch.tensor(x0, requires_grad=True), torch.tensor(y0, requires_grad=True)
            z = x
            for _ in range(TINY_STEPS):
                z = z * y + x
            loss = z.sum()
            loss.backward()
            return loss.item(), [x.grad.numpy(), y.grad.numpy()]

        cases.append(Case("torch", torch_run, result=torch_run, per=ops))
    if _optional("autograd", threads) is not None:
        value_and_grad = importlib.import_module("autograd").value_and_grad

        def chain(x, y):
            z = x
            for _ in range(TINY_STEPS):
                z = z * y + x
            return z.sum()

        chain_grad = value_and_grad(lambda params: chain(*params))

        def autograd_run():
            value, (gx, gy) = chain_grad((x0, y0))
            return value, [gx, gy]

        cases.append(Case("autograd", autograd_run, result=autograd_run, per=ops))
    return Workload(f"{ops} chained tiny ops (z = z * y + x on 4x4), forward + backward", cases, unit="op", target=3.0)


# -- 4. gradcheck ----------------------------------------------------------------------------------
def gradcheck_workloads(threads: int) -> list[Workload]:
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((10, 10)), rng.uniform(0.5, 2.0, (10, 10))
    workloads = []
    for name, f, analytic in (
        ("matmul", lambda a, b: a @ b, lambda a, b, w: (w @ b.T, a.T @ w)),
        ("div", lambda a, b: a / b, lambda a, b, w: (w / b, -w * a / (b * b))),
    ):
        def by_hand(f=f, analytic=analytic):
            weights = np.random.default_rng(0).standard_normal((10, 10))
            expected = analytic(A, B, weights)
            points = [A.copy(), B.copy()]
            for point, grad in zip(points, expected):
                flat = point.reshape(-1)
                numeric = np.empty(flat.size)
                for i in range(flat.size):
                    original = flat[i]
                    flat[i] = original + 1e-6
                    up = np.sum(f(*points) * weights)
                    flat[i] = original - 1e-6
                    down = np.sum(f(*points) * weights)
                    flat[i] = original
                    numeric[i] = (up - down) / 2e-6
                assert np.allclose(grad.reshape(-1), numeric, atol=1e-5, rtol=1e-4)
            return True

        cases = [Case("numpy floor", by_hand), Case("autodiff_ref", lambda f=f: gradcheck(f, A, B))]
        workloads.append(
            Workload(f"gradcheck of {name} on two 10x10 inputs", cases, unit="check", target=1.5,
                     notes=["floor: the same central-difference loop written by hand, plus the analytic gradient"])
        )
    return workloads


# -- 5. the digits example end to end ---------------------------------------------------------------
def digits_workload(threads: int) -> Workload:
    """Train the example's MLP to the end; the floor is loading the data alone (no training)."""
    from autodiff_ref.data import load_digits
    from autodiff_ref.examples.digits import train

    accuracy = train(verbose=False)["test_accuracy"][-1]
    if accuracy < 0.96:
        raise AssertionError(f"the digits example reached only {accuracy:.2%} test accuracy")
    return Workload(
        "digits example end to end (train() with its defaults)",
        [Case("load data only", load_digits), Case("autodiff_ref", lambda: train(verbose=False))],
        unit="run",
        notes=[f"final test accuracy {accuracy:.2%}; target: at least 96% in under 20 s"],
    )


def all_workloads(threads: int, only: Sequence[str] | None) -> tuple[list[Workload], list[str]]:
    skipped = [
        f"{name}: not installed (pip install -e \".[bench]\")"
        for name in ("torch", "autograd", "micrograd")
        if _optional(name, threads) is None
    ]
    groups = {
        "mlp": lambda: mlp_workloads(threads),
        "scalar": lambda: scalar_workloads(threads),
        "tiny": lambda: [tiny_chain_workload(threads)],
        "gradcheck": lambda: gradcheck_workloads(threads),
        "digits": lambda: [digits_workload(threads)],
    }
    chosen = [name for name in groups if not only or any(key.lower() in name for key in only)]
    return [w for name in chosen for w in groups[name]()], skipped
