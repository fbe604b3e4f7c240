"""Placeholder until the loader lands."""


def load_model(path, root=None):
    raise NotImplementedError
