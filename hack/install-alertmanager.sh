#!/usr/bin/env bash
# Alertmanager for the e2e tests of budget notifications: Debian's prometheus-alertmanager (0.25);
# the tests start their own instance on 127.0.0.1 (no clustering).
exec "$(dirname "$0")/install-debian-package.sh" prometheus-alertmanager prometheus-alertmanager
