#!/usr/bin/env bash
# install-packages.sh "WHAT THEY ARE FOR" PACKAGE...: install Debian packages when we
# can (root with apt-get); otherwise say which to install. The ensure-*.sh scripts
# decide what is missing; this is how they all install it.
set -u
purpose="$1"; shift
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing $purpose: $*"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
else
  echo "note: $purpose are missing; install them with: sudo apt-get install $*" >&2
fi
