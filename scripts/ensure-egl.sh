#!/usr/bin/env bash
# Headless rendering needs EGL with Mesa (llvmpipe). Install the Debian packages
# when they are missing and we can; otherwise say what to install.
set -u
if ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so' && ldconfig -p | grep -q 'libgbm.so'; then
  exit 0
fi
exec "$(dirname "$0")/install-packages.sh" "EGL/Mesa libraries for headless rendering" \
  libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1
