"""GL fixtures for tests that render: import the fixtures you use into the test module.

One GL context per test session, from the one function that creates contexts
(:func:`mmdrender.gl.context.get_context`); the GL error state is checked when
the session starts and ends. Where EGL is missing the tests that render skip,
with the message that says which packages to install.
"""

from __future__ import annotations

import pytest

from mmdrender.errors import RenderError
from mmdrender.gl.context import get_context


@pytest.fixture(scope="session")
def gl_context():
    try:
        ctx = get_context()
    except RenderError as error:
        pytest.skip(str(error))
    assert ctx.error == "GL_NO_ERROR"
    yield ctx
    assert ctx.error == "GL_NO_ERROR"
