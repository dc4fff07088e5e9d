"""Utilities: preprocessing, post-processing, frame loading, mask formats."""
