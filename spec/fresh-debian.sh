#!/bin/sh
# fresh-debian.sh - `make test` on a pristine Debian 12, as a new user would run it.
#
#   spec/fresh-debian.sh [BASE] [REPO] [REF]
#
# BASE (default /work/chroot-base) is a chroot made once with
#   debootstrap bookworm /work/chroot-base http://deb.debian.org/debian
# It is never modified: the run works in a copy (an overlay when the kernel
# allows it, else cp -a), clones REPO's REF (default: this repository, main)
# into /opt/mxgate, installs `make` (the one thing a fresh machine lacks
# before `make test`: .ci/deps.sh installs everything else), runs
# `make test` as root, and prints the result line. KEEP=1 keeps the copy.
set -eu
BASE=${1:-/work/chroot-base}
REPO=${2:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
REF=${3:-main}
[ "$(id -u)" = 0 ] || { echo "fresh-debian.sh: run as root (chroot, mount)" >&2; exit 2; }
[ -x "$BASE/bin/sh" ] || { echo "fresh-debian.sh: no chroot at $BASE (debootstrap bookworm $BASE MIRROR)" >&2; exit 2; }

WORK=$(mktemp -d /var/tmp/mxgate-fresh.XXXXXX)
R=$WORK/root
mkdir -p "$R" "$WORK/upper" "$WORK/work"
MOUNTS=""
cleanup() {
	# Processes a test left running inside the copy (by pid, nothing else).
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$R" ] && kill -9 "${p#/proc/}" 2>/dev/null || true
	done
	for m in $MOUNTS; do umount -l "$m" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "kept: $R" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM
if mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/work" "$R" 2>/dev/null; then
	MOUNTS="$R"
else
	cp -a "$BASE/." "$R/"
fi
mount -t proc proc "$R/proc" && MOUNTS="$R/proc $MOUNTS"
mount -t sysfs sys "$R/sys" 2>/dev/null && MOUNTS="$R/sys $MOUNTS" || true
mount --bind /dev "$R/dev" && MOUNTS="$R/dev $MOUNTS"
mount -t devpts devpts "$R/dev/pts" -o newinstance 2>/dev/null && MOUNTS="$R/dev/pts $MOUNTS" || true
mkdir -p "$R/dev/shm"
mount -t tmpfs shm "$R/dev/shm" && MOUNTS="$R/dev/shm $MOUNTS"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/" 2>/dev/null || true

git clone -q --branch "$REF" "$REPO" "$R/opt/mxgate"
echo "fresh-debian: $(git -C "$R/opt/mxgate" log --oneline -1)"
LOG=$WORK/make-test.log
set +e
chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q make >/dev/null &&
	       cd /opt/mxgate && make test' >"$LOG" 2>&1
rc=$?
set -e
grep -E '^(FAIL|missing:)' "$LOG" | cut -c1-200 || true
tail -n 3 "$LOG" | grep -E 'passed|failed|Error' || tail -n 20 "$LOG"
cp "$LOG" /var/tmp/mxgate-fresh-last.log
echo "fresh-debian: make test exit $rc (full log: /var/tmp/mxgate-fresh-last.log)"
exit $rc
