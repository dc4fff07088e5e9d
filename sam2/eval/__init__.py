"""Video object segmentation tools: J&F evaluation and dataset-scale inference."""
