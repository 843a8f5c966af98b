"""Changes in place between a recorded forward and its backward (issue #18, item 3): each route
raises at once, with a message that names the tensor and the op that keeps it, where the
backward would otherwise give wrong gradients without a word. PyTorch raises too, at backward
(tests/test_against_torch.py compares the two)."""

from __future__ import annotations

import numpy as np
import pytest

from autodiff_ref import Tensor, grad, no_grad, nn, optim


def _leaf_message(op: str, shape: str = r"\(1,\)") -> str:
    return rf"Tensor of shape {shape} and dtype float64 \(a leaf\) is read-only: {op} keeps it for its backward"


WRITES = {
    "setitem": lambda a: a.__setitem__(..., 5.0),
    "augmented": lambda a: a.__iadd__(1.0),  # x.data += 1
    "ufunc out=": lambda a: np.add(a, 1.0, out=a),
    "copyto": lambda a: np.copyto(a, 5.0),
    "fill": lambda a: a.fill(5.0),
    "sort": lambda a: a.sort(),
    "put": lambda a: a.put([0], 5.0),
    "np.put": lambda a: np.put(a, [0], 5.0),
    "through a slice taken after the op": lambda a: a[:1].__setitem__(0, 5.0),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_each_write_into_a_saved_input_names_the_tensor_and_the_op(write):
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    with pytest.raises(ValueError, match=_leaf_message("Mul")) as caught:
        write(x.data)
    assert "after backward()" in str(caught.value) and "no_grad()" in str(caught.value)
    y.backward()
    assert x.grad.tolist() == [4.0]  # not 10: the value the forward saw


def test_a_saved_output_is_named_as_the_output_of_its_op():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    y = x.exp()
    with pytest.raises(ValueError, match=r"Tensor of shape \(2, 3\) and dtype float64 \(the output of Exp\) is read-only: Exp keeps it"):
        y.data *= 2
    with pytest.raises(ValueError, match="Exp keeps it"):
        y.numpy()[0, 0] = 1.0


def test_a_float32_parameter_is_named_by_its_class_dtype_and_the_layers_op():
    layer = nn.Linear(3, 2, rng=0, dtype=np.float32)
    layer(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Parameter of shape \(3, 2\) and dtype float32 \(a leaf\) is read-only: Affine keeps it"):
        layer.weight.data[0, 0] = 1.0


def test_the_array_taken_before_the_op_is_locked_too_with_numpys_message():
    # NumPy gives no hook on a plain array: the write still raises, in NumPy's words (documented).
    x = Tensor([2.0, 3.0], requires_grad=True)
    array = x.data
    y = (x * x).sum()
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        array[0] = 5.0
    y.backward()
    assert x.grad.tolist() == [4.0, 6.0]


def test_a_write_through_the_tensor_a_saved_view_was_made_from_raises():
    x = Tensor(np.arange(1.0, 7.0), requires_grad=True)
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x.reshape(2, 3) * w  # Mul keeps the reshaped view, whose values are x's
    with pytest.raises(ValueError, match=r"a recorded op keeps it, or an array it shares memory with"):
        x.data[0] = 100.0
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, np.arange(1.0, 7.0).reshape(2, 3))


def test_detach_shares_the_array_so_its_data_is_read_only_too_and_a_copy_is_not():
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    with pytest.raises(ValueError, match="read-only"):
        x.detach().data[0] = 5.0
    copy = x.data.copy()
    assert type(copy) is np.ndarray
    copy[0] = 5.0
    y.backward()
    assert x.grad.tolist() == [4.0]


def test_a_node_used_twice_and_a_saved_intermediate():
    x = Tensor([3.0], requires_grad=True)
    y = x * x  # x used twice by one op
    z = y * y  # y (an intermediate, the output of Mul) kept by the next Mul
    with pytest.raises(ValueError, match=r"\(the output of Mul\) is read-only: Mul keeps it"):
        y.data[0] = 0.0
    with pytest.raises(ValueError, match=_leaf_message("Mul")):
        x.data[0] = 0.0
    z.backward()
    assert x.grad.tolist() == [4 * 27.0]  # d(x^4)/dx at 3, as PyTorch gives


def test_changes_that_no_backward_reads_are_allowed():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()  # Add and Sum read only shapes: they keep nothing
    x.data[...] = 5.0
    y.backward()
    assert x.grad.tolist() == [1.0, 1.0]
    with no_grad():  # a forward under no_grad records, and so keeps, nothing
        z = x * x
    x.data[...] = 3.0
    z.data[...] = 0.0
    assert x.data.tolist() == [3.0, 3.0] and type(x.data) is np.ndarray


def test_a_change_after_backward_then_a_new_forward_and_backward():
    x = Tensor([2.0], requires_grad=True)
    (x * x).backward()
    with no_grad():
        x.data -= 0.5 * x.grad  # an update by hand, as an optimizer does: x is writable again
    x.grad = None
    y = x * x
    with pytest.raises(ValueError, match="Mul keeps it"):
        x.data[0] = 7.0  # the new forward keeps x again
    y.backward()
    assert x.data.tolist() == [0.0] and x.grad.tolist() == [0.0]


def test_a_second_backward_through_the_same_graph_accumulates():
    x = Tensor([2.0], requires_grad=True)
    y = x.exp()
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad, [2 * np.exp(2.0)], rtol=1e-15)
    with pytest.raises(ValueError, match="Exp keeps it"):
        y.data[0] = 0.0  # an intermediate stays kept: its graph may be differentiated again


def test_an_optimizer_step_before_backward_names_the_parameter_and_the_op():
    layer = nn.Linear(3, 2, rng=0)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    loss = (layer(np.ones((4, 3))) ** 2).mean()
    for p in layer.parameters():
        p.grad = np.ones(p.shape)
    with pytest.raises(ValueError, match=r"SGD: parameter 0 \(shape \(3, 2\)\) is read-only: Affine in a forward"):
        opt.step()
    layer.zero_grad()
    loss.backward()
    before = layer.weight.data.copy()
    opt.step()
    np.testing.assert_allclose(layer.weight.data, before - 0.1 * layer.weight.grad)


def test_a_new_array_is_allowed_but_is_kept_in_its_turn():
    x = Tensor([2.0], requires_grad=True)
    y = x * x
    replacement = np.array([3.0])
    x.data = replacement  # not a change in place: allowed, as in PyTorch (backward reads it)
    with pytest.raises(ValueError, match="read-only"):
        replacement[0] = 4.0
    y.backward()
    assert x.grad.tolist() == [6.0]


def test_a_kept_array_assigned_to_another_tensor_is_stored_plain_and_stays_read_only():
    x = Tensor([2.0], requires_grad=True)
    y = x.exp()
    z = Tensor([0.0], requires_grad=True)
    z.data = y.data
    assert type(z._data) is np.ndarray  # the engine computes on plain arrays
    with pytest.raises(ValueError, match="read-only"):
        z.data[0] = 1.0  # still Exp's output underneath


def test_grad_of_grad_leaves_its_argument_writable():
    x = Tensor([1.5], requires_grad=True)
    second = grad(lambda t: grad(lambda u: (u * u * u).sum())(t).sum())(x)
    np.testing.assert_allclose(second.data, [9.0])  # 6x
    x.data[0] = 2.0  # grad differentiates its own node for x (a Cast, which keeps nothing)
    np.testing.assert_allclose(grad(lambda u: (u * u * u).sum())(x).data, [12.0])


def test_unlocking_the_view_unlocks_the_array():
    # What a caller who knows no backward will read it may do (the Function checker does).
    x = Tensor([2.0], requires_grad=True)
    x * x
    x.data.setflags(write=True)
    x.data[0] = 5.0
    assert type(x.data) is np.ndarray and x.data.tolist() == [5.0]


def test_results_computed_from_a_kept_array_are_plain_arrays():
    x = Tensor(np.arange(4.0).reshape(2, 2), requires_grad=True)
    x.exp()
    held = x.exp().data
    assert type(held) is not np.ndarray and isinstance(held, np.ndarray)
    for result in (held + 1, held.sum(axis=0), np.exp(held), held.copy(), held @ held, np.concatenate([held, held])):
        assert type(result) is np.ndarray
    assert repr(held) == repr(np.exp(np.arange(4.0).reshape(2, 2)))
    assert type((Tensor(held) * 2).data) is np.ndarray
