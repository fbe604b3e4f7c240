#!/usr/bin/env bash
# The review window shows Japanese morph names; without a CJK font Qt draws
# boxes. Install one when none is present and we can; otherwise say which.
set -u
if command -v fc-list >/dev/null && fc-list :lang=ja 2>/dev/null | grep -q .; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing a Japanese font for the annotation window: fonts-ipafont-gothic"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-ipafont-gothic >/dev/null
else
  echo "note: no Japanese font found; morph names may show as boxes." >&2
  echo "      install one with: sudo apt-get install fonts-ipafont-gothic" >&2
fi
