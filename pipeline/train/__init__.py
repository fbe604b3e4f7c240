"""The bundled THA1 trainer (spec section 8): networks, data, training loop, evaluation.

Needs PyTorch (``pip install -e '.[train]'``). Nothing outside this package
imports torch, and importing :mod:`pipeline.train` itself does not either: the
submodules ``nets``, ``data``, ``loop`` and ``evaluate`` do, and
:mod:`pipeline.train.cli` only inside its commands, so ``pipeline --help``
works without torch.
"""

NETWORKS = ("morpher", "rotator", "combiner")
