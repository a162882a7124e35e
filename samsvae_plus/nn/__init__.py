"""Torch networks shared by the models and guides."""
