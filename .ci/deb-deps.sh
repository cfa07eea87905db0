#!/bin/sh
# Installs what `make deb` and `make test-deb` need beyond .ci/deps.sh (the
# package tools), only when one is missing.
set -e
PKGS="debhelper dpkg-dev fakeroot lintian adduser"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
