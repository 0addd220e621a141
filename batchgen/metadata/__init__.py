"""Metadata in and around the images: A1111 infotext and batchgen's record embedded in
PNG and JPEG files, training-set sidecars, and ``batchgen import`` to read them back."""
