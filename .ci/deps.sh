#!/bin/sh
# Installs the Debian 12 packages mxgate builds and tests with, only when
# one is missing, so `make test` and `make run` work on a fresh machine.
set -e
PKGS="adduser build-essential pkg-config clang liblua5.4-dev lua5.4 libc-ares-dev libssl-dev liblmdb-dev
      libev-dev openssl python3 python3-aiosmtpd swaks libnet-ssleay-perl libio-socket-ssl-perl
      libjansson-dev libyajl-dev lua-check rbldnsd nsd dnsutils lmdb-utils libhiredis-dev redis-server
      man-db groff-base libsystemd-dev systemd haproxy
      libmicrohttpd-dev python3-prometheus-client prometheus
      chromium chromium-driver python3-selenium"
# The account mxgate runs as when started as root (`user`, default
# "mxgate"), as the Debian package's postinst creates it.
if ! getent passwd mxgate >/dev/null; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO adduser --system --group --no-create-home --home /nonexistent mxgate >/dev/null 2>&1 ||
		$SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin mxgate 2>/dev/null || getent passwd mxgate >/dev/null
fi
PKGS="$PKGS $*"              # more for one target: `sh .ci/deps.sh lintian ...`
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
