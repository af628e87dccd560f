#!/usr/bin/env bash
# Headless Chromium for the HTML report's browser test: Debian's package.
exec "$(dirname "$0")/install-debian-package.sh" chromium chromium
