"""Trainable models (scikit-learn style)."""
