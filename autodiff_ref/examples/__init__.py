"""Runnable examples: ``python -m autodiff_ref.examples.<name>``.

* ``digits`` — an MLP trained on the real 8x8 handwritten digits with autodiff_ref alone.
"""
