"""autodiff_ref."""
