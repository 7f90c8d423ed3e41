#!/usr/bin/env bash
# Builds the Debian 12 test-host image the deployment test runs the playbook
# against: debootstrap (minbase) + python3 + systemd as PID 1, then
# `docker import`. No registry is needed. The image is tagged with a hash of
# this script, so a rerun finds it and returns at once; change the script and
# the next run builds a new one.
#
# Usage: build-image.sh            prints the image tag on stdout
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Packages beyond minbase: what a cloud image has that the playbook relies on.
# iproute2 gives Ansible the default IPv4 fact; nothing monitoring-related is
# preinstalled, the roles install it.
packages="python3,systemd,systemd-sysv,dbus,iproute2,ca-certificates"
hash="$(cat "$0" | sha256sum | cut -c1-12)"
tag="fleet-monitoring/debian12-systemd:${hash}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "build-image.sh: debootstrap is not installed (make deps installs it)" >&2
  exit 1
}

root="$(mktemp -d /tmp/fleet-debian12.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "building $tag with debootstrap from $mirror (about 2 minutes)" >&2
start=$(date +%s)
debootstrap --variant=minbase --include="$packages" bookworm "$root/rootfs" "$mirror" \
  >"$root/debootstrap.log" 2>&1 || {
  tail -30 "$root/debootstrap.log" >&2
  echo "build-image.sh: debootstrap failed (log above)" >&2
  exit 1
}
r="$root/rootfs"
# A host, not a build chroot: no cached .debs (but those below), the machine id made at first
# boot, updates and security suites as on a real Debian 12 server.
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
: >"$r/etc/machine-id"
cat >"$r/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
SOURCES
# Units that make no sense in a container and only slow the boot.
for unit in systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount systemd-firstboot.service getty.target console-getty.service; do
  ln -sf /dev/null "$r/etc/systemd/system/$unit"
done

tar -C "$r" -c . | docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$tag-base" >/dev/null
# The package lists and the packages the roles and the test install (with
# what they recommend), fetched once here, as on a server whose apt-daily
# updated its lists and a site's apt proxy holding the packages: every host
# fetching them from the mirror made the first deployment of the five-host
# topology take up to 12 minutes. apt still installs them at deployment, from
# this cache and at these versions (the test marks the lists as fresh when a
# host starts, deploy_test.py's start_hosts).
cached="prometheus prometheus-alertmanager victoria-metrics nftables procps rsyslog nginx openssh-server sudo"
docker rm -f "fleet-image-${hash}" >/dev/null 2>&1 || true
docker run --name "fleet-image-${hash}" "$tag-base" sh -c \
  "apt-get update -q && apt-get install -y -q --download-only $cached" >"$root/download.log" 2>&1 || {
  tail -30 "$root/download.log" >&2
  docker rm -f "fleet-image-${hash}" >/dev/null 2>&1 || true
  echo "build-image.sh: downloading the packages failed (log above)" >&2
  exit 1
}
docker commit --change 'CMD ["/sbin/init"]' "fleet-image-${hash}" "$tag" >/dev/null
docker rm -f "fleet-image-${hash}" >/dev/null
docker rmi "$tag-base" >/dev/null
echo "built $tag in $(($(date +%s) - start))s" >&2
echo "$tag"
