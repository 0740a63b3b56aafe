"""Adapters for external formats (COCO, Label Studio) and safe file I/O."""
