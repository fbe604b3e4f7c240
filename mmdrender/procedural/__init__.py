"""Procedural sample characters: geometry, textures and assembly (see :mod:`mmdrender.samples`)."""
