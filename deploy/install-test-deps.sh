#!/bin/sh
# Installs what heloguard's end-to-end tests need on Debian (12 "bookworm" and
# later): Postfix, swaks and OpenDKIM's miltertest, and an extracted (not
# installed) Sendmail for deploy/sendmail. Then run
#   HELOGUARD_E2E=1 go test -race ./...
# (as root: the Postfix test runs a throw-away Postfix instance).
#
# Postfix is installed with debconf's "No configuration": no /etc/postfix/main.cf
# is written and the system's Postfix is not configured for delivery. The tests
# run their own instance (postfix -c DIR) and never start or change the system
# one. Note that Debian's package still enables the postfix service; on a CI
# machine without systemd nothing starts it.
#
# Sendmail: Debian's sendmail-bin conflicts with postfix (both are the MTA), so
# it is NOT installed. Its packages are downloaded with `apt-get download` and
# unpacked with `dpkg -x` into $HELOGUARD_SENDMAIL_ROOT (default
# /var/cache/heloguard-test/sendmail); the test runs sendmail from there with
# its own configuration. The libraries it needs and m4 (to build sendmail.cf)
# do not conflict and are installed normally.
#
# Idempotent: installed packages are left alone. Exits non-zero on failure.
set -eu

# swaks only Recommends libio-socket-inet6-perl, and the install runs with
# --no-install-recommends: without it `swaks -6` (the Sendmail test's IPv6
# client) fails with "IPv6 not available: requires IO::Socket::INET6".
packages="postfix swaks libio-socket-inet6-perl miltertest"
# For the extracted Sendmail: libwrap0 (sendmail links it), liblockfile1
# (mail.local), m4 (sendmail.cf). Its other libraries come with the base system.
sendmail_libs="m4 libwrap0 liblockfile1"
sendmail_pkgs="sendmail-bin sendmail-base sendmail-cf"
sendmail_root="${HELOGUARD_SENDMAIL_ROOT:-/var/cache/heloguard-test/sendmail}"

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E sh "$0" "$@"
	fi
	echo "install-test-deps.sh: must run as root (or with sudo available)" >&2
	exit 1
fi

missing=""
for p in $packages $sendmail_libs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-test-deps.sh: already installed: $packages $sendmail_libs"
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

# Sendmail, extracted. The stamp names the versions unpacked; a changed
# candidate version (or a missing file) unpacks again.
want=""
for p in $sendmail_pkgs; do
	v=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -z "$v" ] || [ "$v" = "(none)" ]; then
		apt-get update
		v=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	fi
	if [ -z "$v" ] || [ "$v" = "(none)" ]; then
		echo "install-test-deps.sh: no installable version of $p" >&2
		exit 1
	fi
	want="$want $p=$v"
done
stamp="$sendmail_root/.extracted"
if [ -x "$sendmail_root/usr/libexec/sendmail/sendmail" ] && [ -d "$sendmail_root/usr/share/sendmail/cf/m4" ] &&
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "install-test-deps.sh: Sendmail already extracted in $sendmail_root ($want )"
else
	echo "install-test-deps.sh: extracting Sendmail into $sendmail_root ($want )"
	debs="$sendmail_root.debs"
	rm -rf "$debs" "$sendmail_root"
	mkdir -p "$debs" "$sendmail_root"
	# apt-get download writes into the current directory; _apt must be able to
	# write there, or it warns and downloads as root.
	chown _apt "$debs" 2>/dev/null || true
	apt-get update
	# shellcheck disable=SC2086
	(cd "$debs" && apt-get download $want)
	for f in "$debs"/*.deb; do
		dpkg -x "$f" "$sendmail_root"
	done
	rm -rf "$debs"
	echo "$want" >"$stamp"
fi

# Check that what the tests call is there.
status=0
for tool in /usr/sbin/postfix /usr/sbin/postconf /usr/bin/swaks /usr/bin/miltertest /usr/bin/m4 \
	"$sendmail_root/usr/libexec/sendmail/sendmail"; do
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
if [ ! -f "$sendmail_root/usr/share/sendmail/cf/m4/cf.m4" ]; then
	echo "install-test-deps.sh: $sendmail_root/usr/share/sendmail/cf/m4/cf.m4 is missing" >&2
	status=1
elif ldd "$sendmail_root/usr/libexec/sendmail/sendmail" | grep -q 'not found'; then
	echo "install-test-deps.sh: the extracted sendmail lacks libraries:" >&2
	ldd "$sendmail_root/usr/libexec/sendmail/sendmail" | grep 'not found' >&2
	status=1
fi
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q '^install ok installed$'; then
	echo "install-test-deps.sh: postfix is not installed (was it replaced by an MTA?)" >&2
	status=1
fi
if [ "$status" -eq 0 ]; then
	echo "install-test-deps.sh: ok ($(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?') postfix, $(/usr/bin/swaks --version 2>/dev/null | head -n 1), sendmail in $sendmail_root)"
fi
exit "$status"
