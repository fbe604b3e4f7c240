#!/usr/bin/env bash
# Headless rendering needs EGL with Mesa (llvmpipe). Install the Debian packages
# when they are missing and we can; otherwise say what to install.
set -u
if ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so' && ldconfig -p | grep -q 'libgbm.so'; then
  exit 0
fi
pkgs="libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing EGL/Mesa for headless rendering: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
else
  echo "warning: EGL/Mesa libraries not found; rendering will fail." >&2
  echo "         install them with: sudo apt-get install $pkgs" >&2
fi
