#!/usr/bin/env bash
# The review window and contact sheets show Japanese names; without a CJK font
# they draw boxes or "?". Install one when none is present and we can.
set -u
if command -v fc-list >/dev/null && fc-list :lang=ja 2>/dev/null | grep -q .; then
  exit 0
fi
exec "$(dirname "$0")/install-packages.sh" "a Japanese font for names in the window and sheets" \
  fonts-ipafont-gothic
