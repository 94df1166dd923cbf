"""Inference: run generators over images, folders and videos."""
