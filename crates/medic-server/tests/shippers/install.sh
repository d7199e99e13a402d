#!/usr/bin/env bash
# Installs the real log shippers the ingest tests run against: syslog-ng (with its http()
# module) and rsyslog. The two Debian packages conflict (both provide system-log-daemon), so
# their libraries are installed with apt and the packages themselves are unpacked with
# dpkg -x into a cache dir, run unprivileged from there. Prometheus installs normally.
# Idempotent; prints the cache dir.
set -euo pipefail
DIR="${MEDIC_SHIPPERS_DIR:-$HOME/.cache/medic/shippers}"
mkdir -p "$DIR"
if [ -x "$DIR/root/usr/sbin/syslog-ng" ] && [ -x "$DIR/root/usr/sbin/rsyslogd" ] \
  && [ -e "$DIR/root/usr/lib/syslog-ng/3.38/libhttp.so" ] && command -v prometheus >/dev/null; then
  echo "$DIR"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Their libraries (everything they depend on except each other's conflict).
apt-get install -y -qq --no-install-recommends prometheus \
  libcap2 libglib2.0-0 libivykis0 libjson-c5 libnet1 libpcre3 libssl3 libsystemd0 libwrap0 libcurl4 \
  libestr0 libfastjson4 liblognorm5 libuuid1 libzstd1 zlib1g >/dev/null
cd "$DIR"
rm -f ./*.deb
apt-get download syslog-ng-core syslog-ng-mod-http rsyslog >/dev/null
mkdir -p root
for deb in ./*.deb; do dpkg -x "$deb" root; done
echo "$DIR"
