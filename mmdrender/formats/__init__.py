"""Readers and writers for the MMD file formats, on top of pymeshio."""
