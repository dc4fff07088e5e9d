"""The ``sam2`` command line."""
