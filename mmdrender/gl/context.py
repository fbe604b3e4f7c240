"""The one place a GL context is created.

The platform owns the context's lifetime; the renderer only issues GL calls on
a context it is given. Rendering is headless through EGL: Mesa's llvmpipe on
a machine without a GPU, the GPU's driver where there is one (EGL's first
device; ``GLCONTEXT_DEVICE_INDEX=N`` picks another, as glcontext reads it).
:func:`describe` names the driver that draws.

One context per process, created on first use and reused. A forked child
(joblib, multiprocessing) gets its own, since a context does not survive a
fork. Objects are collected with ``gc_mode = "context_gc"``: GPU objects that
Python drops are queued and freed by :func:`collect` (the renderer calls it
between models), and the renderer also releases what it creates explicitly, so
long-running workers do not leak.
"""

from __future__ import annotations

import os
import threading

import moderngl

from mmdrender.errors import RenderError

GL_VERSION = 330
EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"

_lock = threading.Lock()
_context: moderngl.Context | None = None
_context_pid: int | None = None


def create_context() -> moderngl.Context:
    """A new headless OpenGL 3.3 core context through EGL.

    Prefer :func:`get_context`; this is the only function in the project that
    calls ``moderngl.create_standalone_context``.
    """
    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=GL_VERSION)
    except Exception as error:  # glcontext raises bare Exceptions on a missing EGL
        raise RenderError(
            f"cannot create a headless OpenGL {GL_VERSION // 100}.{GL_VERSION % 100 // 10} "
            f"context through EGL ({error}). Rendering needs EGL and a Mesa (or GPU) "
            f"driver; on Debian/Ubuntu: apt-get install {EGL_PACKAGES}"
        ) from error
    ctx.gc_mode = "context_gc"
    return ctx


def get_context() -> moderngl.Context:
    """This process's GL context, created on first use.

    Use it from the thread that first asked for it: an EGL context is current
    on one thread.
    """
    global _context, _context_pid
    with _lock:
        if _context is None or _context_pid != os.getpid():
            _context = create_context()
            _context_pid = os.getpid()
        return _context


def describe(ctx: moderngl.Context | None = None) -> str:
    """The driver that draws, as GL names it: ``llvmpipe (LLVM 15.0.6, 256 bits), Mesa
    22.3.6`` on the CPU, the GPU's name and driver version on a GPU."""
    info = (ctx if ctx is not None else get_context()).info
    renderer, version = info.get("GL_RENDERER", "unknown"), info.get("GL_VERSION", "")
    driver = version.split(" ", 1)[1] if " " in version else version  # after "4.5 (Core...)"
    return f"{renderer}, {driver.split(') ', 1)[-1]}" if driver else renderer


def collect(ctx: moderngl.Context | None = None) -> int:
    """Free GPU objects that Python has dropped; returns how many were freed."""
    ctx = ctx if ctx is not None else _context
    if ctx is None:
        return 0
    # moderngl also queues objects that were released explicitly before Python
    # dropped them, as placeholders without a release(); ctx.gc() would fail on them.
    queue = ctx.objects
    live = [obj for obj in queue if hasattr(obj, "release")]
    queue.clear()
    queue.extend(live)
    return ctx.gc()


def unbind_framebuffer(ctx: moderngl.Context) -> None:
    """Bind framebuffer 0; call before releasing the framebuffer that is bound.

    moderngl re-binds the last framebuffer used whenever it creates the next
    one; if that one was deleted, GL raises GL_INVALID_OPERATION.
    """
    ctx.detect_framebuffer(0).use()


def release_context() -> None:
    """Release this process's context (a later :func:`get_context` makes a new one)."""
    global _context, _context_pid
    with _lock:
        if _context is not None and _context_pid == os.getpid():
            _context.gc()
            _context.release()
        _context, _context_pid = None, None
