"""sam2-kit: an independent implementation of Segment Anything 2 / 2.1 with the official `sam2` API."""

__version__ = "0.1.0"
