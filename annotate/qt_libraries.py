"""Which system libraries Qt's X11 (xcb) platform plugin needs and cannot find here.

PySide6's wheels bundle Qt but not the X11 libraries its xcb plugin links
against. Qt itself, when the plugin fails to load, only ever names
libxcb-cursor0 (a hint added in Qt 6.5) whatever is missing; asking the dynamic
linker (``ldd``) about the plugin names what actually is. ``make setup-gui``
installs the Debian packages of those (``python -m annotate.qt_libraries``
prints them), and ``annotate gui`` names them when the window cannot open.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

#: sonames whose Debian package does not follow the usual naming (lib<name><version>)
_PACKAGES = {"libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
             "libgobject-2.0.so.0": "libglib2.0-0", "libGLdispatch.so.0": "libglvnd0",
             "libgcc_s.so.1": "libgcc-s1", "libz.so.1": "zlib1g", "libm.so.6": "libc6",
             "libpthread.so.0": "libc6", "libdl.so.2": "libc6", "librt.so.1": "libc6",
             "libbrotlidec.so.1": "libbrotli1", "libbrotlicommon.so.1": "libbrotli1",
             "libharfbuzz.so.0": "libharfbuzz0b"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_SONAME = re.compile(r"^(?P<name>.+?)\.so\.(?P<version>\d+)")


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, or None where PySide6 (or the plugin) is absent."""
    try:
        import PySide6
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def missing_libraries(plugin: Path | None = None) -> list[str]:
    """The sonames the plugin (and what it loads) needs that the linker cannot find."""
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return []
    try:
        done = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []  # no ldd (not glibc Linux): nothing to say
    return list(dict.fromkeys(_NOT_FOUND.findall(done.stdout)))


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname`` (libxcb-icccm.so.4 -> libxcb-icccm4)."""
    if soname in _PACKAGES:
        return _PACKAGES[soname]
    match = _SONAME.match(soname)
    if match is None:
        return soname
    name, version = match["name"].lower().replace("_", "-"), match["version"]
    return f"{name}{'-' if name[-1].isdigit() else ''}{version}"


def packages_for(sonames) -> list[str]:
    """The Debian/Ubuntu packages that ship ``sonames``, each once, in order."""
    return list(dict.fromkeys(debian_package(s) for s in sonames))


def missing_packages(plugin: Path | None = None) -> list[str]:
    return packages_for(missing_libraries(plugin))


if __name__ == "__main__":  # scripts/ensure-qt.sh: the packages to install, one line
    print(" ".join(missing_packages()))
    sys.exit(0)
