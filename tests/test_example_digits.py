"""The digits example, end to end: it learns, it is seeded, and its command line works."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from autodiff_ref.examples import digits


@pytest.fixture(scope="module")
def short_run():
    return digits.train(epochs=3, seed=0)


def test_training_learns_far_above_chance(short_run):
    assert set(short_run) == {"epoch", "train_loss", "test_accuracy", "elapsed"}
    assert all(len(values) == 3 for values in short_run.values())
    assert short_run["epoch"] == [1, 2, 3]
    assert short_run["test_accuracy"][-1] > 0.8, "chance is 0.1"
    assert short_run["train_loss"][-1] < short_run["train_loss"][0] < 2.3  # log(10) at chance
    assert short_run["elapsed"] == sorted(short_run["elapsed"])


def test_training_is_seeded(short_run):
    again = digits.train(epochs=3, seed=0)
    assert again["train_loss"] == short_run["train_loss"]
    assert again["test_accuracy"] == short_run["test_accuracy"]
    other = digits.train(epochs=1, seed=1, hidden=32, lr=0.02, batch_size=64)
    assert other["train_loss"][0] != short_run["train_loss"][0]


def test_command_line_prints_progress_and_saves_the_plot(tmp_path, short_run):
    plot = tmp_path / "history.png"
    result = subprocess.run(
        [sys.executable, "-m", "autodiff_ref.examples.digits", "--epochs", "2", "--plot", str(plot)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    status = [line for line in lines if line.startswith("epoch")]
    assert len(status) == 2
    # Same seed, another process: the same numbers as the in-process run.
    for line, loss, acc in zip(status, short_run["train_loss"], short_run["test_accuracy"]):
        assert f"train loss {loss:.4f}" in line and f"test accuracy {acc:.2%}" in line
    final = re.search(r"final test accuracy: (\d+\.\d+)%", result.stdout)
    assert final and float(final.group(1)) == pytest.approx(100 * short_run["test_accuracy"][1], abs=0.01)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--epochs", "0"], "--epochs must be positive, got 0"),
        (["--lr", "-1"], "--lr must be positive, got -1.0"),
        (["--batch-size", "0"], "--batch-size must be positive, got 0"),
        (["--plot", "no/such/folder/plot.png"], "--plot no/such/folder/plot.png: the folder"),
    ],
)
def test_command_line_rejects_bad_options_before_training(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        digits.main(arguments)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and "epoch" not in captured.out


def test_train_rejects_a_bad_epoch_count():
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        digits.train(epochs=0)
