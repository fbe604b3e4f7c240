#!/usr/bin/env bash
# The review window's Qt needs X11 (xcb) libraries PySide6 does not bundle. Ask
# the dynamic linker which are missing (annotate/qt_libraries.py) and install
# their Debian packages when we can; otherwise say which to install.
set -u
py="${1:-.venv/bin/python}"
pkgs="$("$py" -m annotate.qt_libraries)" || exit 0
if [ -z "$pkgs" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing the X11 libraries Qt's window needs: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
else
  echo "note: the annotation window needs system libraries that are missing." >&2
  echo "      install them with: sudo apt-get install $pkgs" >&2
fi
