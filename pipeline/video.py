"""A clip's frames as a video a person can watch (H.264 in MP4, through PyAV).

PyAV wraps FFmpeg's own encoders, so nothing here encodes by hand. The frames'
transparent background is drawn over a plain colour (white by default), and a
side of odd length grows by one pixel, as H.264's 4:2:0 colour needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmdrender.sheet import composite
from pipeline.errors import PipelineError

BACKGROUND = (255, 255, 255)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float,
                background=BACKGROUND) -> int:
    """Encode RGBA ``frames`` to ``path`` (.mp4); returns how many were written."""
    try:
        import av
    except ImportError:
        raise PipelineError("--video needs PyAV: pip install -e '.[video]'") from None
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(path.name + ".tmp.mp4")
    written = 0
    try:
        with av.open(str(tmp), "w") as container:
            stream = None
            for rgba in frames:
                rgb = composite(rgba, background)
                height, width = rgb.shape[:2]
                if height % 2 or width % 2:
                    rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                    stream.pix_fmt = "yuv420p"
                    if codec == "libx264":
                        stream.options = {"crf": "18"}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        tmp.replace(path)
    except (OSError, av.error.FFmpegError) as error:
        raise PipelineError(f"cannot write the video {path}: {error}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return written
