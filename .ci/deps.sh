#!/bin/sh
# Installs the Debian 12 packages mxgate builds and tests with, only when
# one is missing, so `make test` and `make run` work on a fresh machine.
set -e
PKGS="build-essential pkg-config clang liblua5.4-dev lua5.4 libc-ares-dev libssl-dev liblmdb-dev
      libev-dev openssl python3 python3-aiosmtpd swaks libnet-ssleay-perl libio-socket-ssl-perl
      libjansson-dev lua-check rbldnsd nsd dnsutils lmdb-utils libhiredis-dev redis-server"
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
