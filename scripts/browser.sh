#!/usr/bin/env bash
# Installs what the browser test (make browser) drives: Debian's chromium.
# Idempotent: does nothing when chromium is on the PATH; refreshes the
# package lists only when apt does not know the package yet (a fresh
# container starts with none). Prints the path of chromium.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache show chromium >/dev/null 2>&1; then
		"${sudo[@]}" apt-get update -qq
	fi
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium
