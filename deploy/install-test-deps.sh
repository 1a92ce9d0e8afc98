#!/bin/sh
# Installs what heloguard's end-to-end tests need on Debian (12 "bookworm" and
# later): Postfix, swaks and OpenDKIM's miltertest. Then run
#   HELOGUARD_E2E=1 go test -race ./...
# (as root: the Postfix test runs a throw-away Postfix instance).
#
# Postfix is installed with debconf's "No configuration": no /etc/postfix/main.cf
# is written and the system's Postfix is not configured for delivery. The tests
# run their own instance (postfix -c DIR) and never start or change the system
# one. Note that Debian's package still enables the postfix service; on a CI
# machine without systemd nothing starts it.
#
# Idempotent: installed packages are left alone. Exits non-zero on failure.
set -eu

packages="postfix swaks miltertest"

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E sh "$0" "$@"
	fi
	echo "install-test-deps.sh: must run as root (or with sudo available)" >&2
	exit 1
fi

missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-test-deps.sh: already installed: $packages"
else
	echo "install-test-deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix: do not configure a mail system.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "postfix postfix/mailname string mx.receiver.example" | debconf-set-selections
	apt-get update
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		$missing
fi

# Check that what the tests call is there.
status=0
for tool in /usr/sbin/postfix /usr/sbin/postconf /usr/bin/swaks /usr/bin/miltertest; do
	if [ ! -x "$tool" ]; then
		echo "install-test-deps.sh: $tool is missing after the install" >&2
		status=1
	fi
done
for name in postfix; do
	if ! getent passwd "$name" >/dev/null || ! getent group "$name" >/dev/null; then
		echo "install-test-deps.sh: the $name user or group is missing" >&2
		status=1
	fi
done
if [ "$status" -eq 0 ]; then
	echo "install-test-deps.sh: ok ($(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?') postfix, $(/usr/bin/swaks --version 2>/dev/null | head -n 1))"
fi
exit "$status"
