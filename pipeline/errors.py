"""The one exception type of :mod:`pipeline`, with messages a user can act on."""


class PipelineError(Exception):
    """An index, a dataset or a run is not as it should be; the message says how."""
