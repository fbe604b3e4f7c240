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
# shellcheck disable=SC2086  # one word per package
exec "$(dirname "$0")/install-packages.sh" "the X11 libraries the annotation window needs" $pkgs
