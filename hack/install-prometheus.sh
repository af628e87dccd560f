#!/usr/bin/env bash
# Prometheus for the local cluster: Debian's package (2.42), which has the HTTP API we need.
# Building Prometheus 3 from its Go module also works but adds ~15 minutes and a gigabyte of
# modules for nothing the tests use.
exec "$(dirname "$0")/install-debian-package.sh" prometheus prometheus
