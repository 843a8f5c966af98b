"""Train a small neural network on real handwritten digits, with autodiff_ref alone.

Run ``python -m autodiff_ref.examples.digits [--epochs N] [--seed S] [--hidden H] [--lr LR]
[--batch-size B] [--plot FILE]``. The network is an MLP 64 -> hidden -> 10 with a ReLU, trained
with cross-entropy and SGD with momentum on mini-batches of the 1,437 training images; after each
epoch it prints the training loss and the accuracy on the 360 held-out test images. With the
defaults it reaches about 97% test accuracy in a few seconds. Everything random (initial weights,
batch order) comes from ``--seed``, so two runs print the same numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from autodiff_ref import no_grad
from autodiff_ref.data import batches, load_digits
from autodiff_ref.nn import Linear, ReLU, Sequential, accuracy, cross_entropy
from autodiff_ref.optim import SGD

N_PIXELS, N_CLASSES = 64, 10


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale each pixel by its training-set mean and standard deviation.

    Centred inputs of similar scale make the loss surface rounder, so one learning rate suits
    every weight. Pixels near the border are blank in almost every image (standard deviation
    near 0); the 0.1 added to the deviation keeps their rare ink from being blown up into huge
    inputs. Test images use the training statistics: the test set stays unseen.
    """
    mean, scale = X_train.mean(axis=0), X_train.std(axis=0) + 0.1
    return (X_train - mean) / scale, (X_test - mean) / scale


def train(
    epochs: int = 30,
    seed: int = 0,
    hidden: int = 128,
    lr: float = 0.05,
    batch_size: int = 32,
    momentum: float = 0.9,
    verbose: bool = False,
) -> dict[str, list[float]]:
    """Train the MLP and return its history, one entry per epoch.

    The history has the keys ``epoch`` (1, 2, ...), ``train_loss`` (mean cross-entropy over the
    epoch's batches), ``test_accuracy`` (fraction of test images classified correctly after the
    epoch) and ``elapsed`` (seconds since training started). With ``verbose`` each epoch
    prints one status line.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    digits = load_digits()
    X_train, X_test = standardize(digits.X_train, digits.X_test)
    rng = np.random.default_rng(seed)  # one stream: initial weights, then every epoch's order
    model = Sequential(Linear(N_PIXELS, hidden, rng=rng), ReLU(), Linear(hidden, N_CLASSES, rng=rng))
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)

    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "test_accuracy": [], "elapsed": []}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss_sum = 0.0
        for X, y in batches(X_train, digits.y_train, batch_size, seed=rng):
            optimizer.zero_grad()
            loss = cross_entropy(model(X), y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
        with no_grad():
            test_accuracy = accuracy(model(X_test), digits.y_test)
        history["epoch"].append(epoch)
        history["train_loss"].append(loss_sum / len(X_train))
        history["test_accuracy"].append(test_accuracy)
        history["elapsed"].append(time.perf_counter() - start)
        if verbose:
            print(
                f"epoch {epoch:3d}/{epochs}  train loss {history['train_loss'][-1]:.4f}  "
                f"test accuracy {test_accuracy:.2%}  {history['elapsed'][-1]:6.2f} s",
                flush=True,
            )
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m autodiff_ref.examples.digits",
        description="Train an MLP on the 8x8 handwritten digits with autodiff_ref.",
    )
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and batch order (default 0)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--plot", metavar="FILE", help="save the loss and accuracy curves to FILE (e.g. digits.png)")
    args = parser.parse_args(argv)
    for option in ("epochs", "hidden", "batch_size", "lr"):
        if not getattr(args, option) > 0:
            parser.error(f"--{option.replace('_', '-')} must be positive, got {getattr(args, option)}")
    if args.plot:
        # Checked before training, so a bad path or a missing plotting library costs no wait.
        folder = Path(args.plot).resolve().parent
        if not folder.is_dir():
            parser.error(f"--plot {args.plot}: the folder {folder} does not exist")
        import matplotlib

        matplotlib.use("Agg")  # write a file; no window, no display needed
        from autodiff_ref.viz import plot_history

    history = train(
        epochs=args.epochs, seed=args.seed, hidden=args.hidden, lr=args.lr,
        batch_size=args.batch_size, verbose=True,
    )
    print(f"final test accuracy: {history['test_accuracy'][-1]:.2%} "
          f"after {args.epochs} epochs in {history['elapsed'][-1]:.2f} s")
    if args.plot:
        plot_history(history).savefig(args.plot)
        print(f"saved the plot to {args.plot}")


if __name__ == "__main__":
    main()
