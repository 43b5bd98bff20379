"""Hardware drivers: one small interface per kind, real and synthetic backends side by side."""
