#!/bin/sh
# Installs what heloguard's end-to-end tests need on Debian (12 "bookworm" and
# later), then verifies every capability the tests use. Then run
#   HELOGUARD_E2E=1 go test -race ./...
# (as root: the Postfix and Sendmail tests run throw-away MTA instances).
#
#   install-test-deps.sh            install what is missing, then verify
#   install-test-deps.sh --verify   verify only; installs nothing (make check)
#
# What is installed: Postfix, swaks with libio-socket-inet6-perl (swaks only
# Recommends it, and without it `swaks -6` fails: the Sendmail test's IPv6
# client), OpenDKIM's miltertest, an extracted (not installed) Sendmail
# for deploy/sendmail, and for deploy/deb (which builds the Debian package,
# installs it into this machine and purges it again): lintian, systemd (for
# systemd-analyze verify; systemd is not started), logrotate, adduser and
# man-db (the package's postinst and man pages).
#
# What is verified, each failure reported on one line of its own: root; go on
# PATH; Postfix >= 3.6 (the tests' main.cf says compatibility_level = 3.6 and
# uses maillog_file, postlogd, inline: maps and the haproxy protocol) with its
# user and group; swaks with IPv6 and socket support (`swaks --support`) that
# takes every option the tests pass; the Perl modules swaks needs for them;
# listening on [::1]; miltertest running a Lua script; m4, hostname, a UTS
# namespace (or a qualified host name) and a writable /run for Sendmail;
# Sendmail unpacked, its libraries resolved, running, built with MILTER, and
# m4 building a sendmail.cf from its cf/ tree; the scenario world in the
# repository; dpkg-deb, lintian, systemd-analyze verifying a unit, logrotate
# parsing a config, adduser, runuser, userdel, man and groff. A missing piece is a setup error here, not an obscure
# test failure later.
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

me=install-test-deps.sh
# swaks only Recommends libio-socket-inet6-perl, and the install runs with
# --no-install-recommends: without it `swaks -6` (the Sendmail test's IPv6
# client) fails with "IPv6 not available: requires IO::Socket::INET6".
packages="postfix swaks libio-socket-inet6-perl miltertest unbound"
# deploy/deb: lintian checks the package, systemd-analyze (package systemd)
# verifies its unit, logrotate parses its snippet; adduser runs in its
# postinst, man-db (with groff-base) reads its man pages.
deb_packages="lintian systemd logrotate adduser man-db groff-base"
# For the extracted Sendmail: libwrap0 (sendmail links it), liblockfile1
# (mail.local), m4 (sendmail.cf). Its other libraries come with the base system.
sendmail_libs="m4 libwrap0 liblockfile1"
sendmail_pkgs="sendmail-bin sendmail-base sendmail-cf"
sendmail_root="${HELOGUARD_SENDMAIL_ROOT:-/var/cache/heloguard-test/sendmail}"
sendmail_bin="$sendmail_root/usr/libexec/sendmail/sendmail"
sendmail_cf="$sendmail_root/usr/share/sendmail/cf"
# The oldest Postfix the tests' main.cf works with (compatibility_level = 3.6).
postfix_min_major=3
postfix_min_minor=6
# Perl modules behind the swaks features the tests use: IO::Socket (socket
# transport), IO::Socket::INET6 (-6, --local-interface ::1), POSIX (Date:).
perl_modules="IO::Socket IO::Socket::INET6 POSIX"
# The swaks features (as `swaks --support` names them) the tests use.
swaks_features="Socket Transport
IPv6"
# The scenario world the tests serve, kept in the repository.
scenario="$(cd "$(dirname "$0")/.." && pwd)/policy/scenario/testdata/seed-office365.yaml"

mode=install
case "${1:-}" in
"") ;;
--verify) mode=verify ;;
*)
	echo "usage: $me [--verify]" >&2
	exit 2
	;;
esac

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# fail prints one line: what is missing, why the tests need it, how to get it.
failed=0
fail() {
	echo "$me: FAIL: $*" >&2
	failed=$((failed + 1))
}

# firstline prints the first non-empty line of its input, trimmed.
firstline() {
	sed -n 's/^[[:space:]]*//; s/[[:space:]]*$//; /./{p;q;}'
}

verify() {
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT

	if [ "$(id -u)" -ne 0 ]; then
		fail "not running as root (uid $(id -u)): the Postfix and Sendmail tests run throw-away MTA instances as root"
	fi
	if ! command -v go >/dev/null 2>&1; then
		fail "go is not on PATH: the end-to-end tests build heloguard from this tree with it"
	fi
	if [ ! -f "$scenario" ]; then
		fail "the scenario world $scenario is missing: is this a whole checkout of the repository?"
	fi

	# Postfix.
	pf_version=""
	if [ ! -x /usr/sbin/postfix ] || [ ! -x /usr/sbin/postconf ]; then
		fail "Postfix is not installed (/usr/sbin/postfix, /usr/sbin/postconf; Debian package postfix)"
	elif ! pf_version=$(/usr/sbin/postconf -d -h mail_version 2>&1); then
		fail "postconf -d mail_version does not run: $(echo "$pf_version" | firstline)"
		pf_version=""
	else
		major=${pf_version%%.*}
		rest=${pf_version#*.}
		minor=${rest%%.*}
		case "$major.$minor" in
		*[!0-9.]* | .* | *.)
			fail "cannot read Postfix's version from postconf: '$pf_version'"
			;;
		*)
			if [ "$major" -lt "$postfix_min_major" ] ||
				{ [ "$major" -eq "$postfix_min_major" ] && [ "$minor" -lt "$postfix_min_minor" ]; }; then
				fail "Postfix $pf_version is too old: the tests need Postfix >= $postfix_min_major.$postfix_min_minor (their main.cf says compatibility_level = 3.6)"
			fi
			;;
		esac
	fi
	if command -v dpkg-query >/dev/null 2>&1 && ! installed postfix; then
		fail "the postfix package is not installed (was it replaced by another MTA?)"
	fi
	if ! getent passwd postfix >/dev/null || ! getent group postfix >/dev/null; then
		fail "the postfix user or group is missing: the throw-away Postfix runs as mail_owner = postfix"
	fi

	# Perl modules swaks needs for what the tests do.
	perl_ok=1
	if ! command -v perl >/dev/null 2>&1; then
		fail "perl is not installed: swaks is a Perl program"
		perl_ok=0
	else
		for m in $perl_modules; do
			if ! err=$(perl -M"$m" -e1 2>&1); then
				hint=""
				[ "$m" = IO::Socket::INET6 ] && hint=" (Debian package libio-socket-inet6-perl; swaks -6 needs it)"
				fail "Perl module $m is missing$hint: $(echo "$err" | firstline | sed 's/ in @INC.*/ in @INC/')"
				perl_ok=0
			fi
		done
	fi
	# IPv6 on loopback: Sendmail listens on [::1], swaks connects from it.
	if [ "$perl_ok" -eq 1 ] &&
		! err=$(perl -MIO::Socket::INET6 -e 'IO::Socket::INET6->new(Listen => 1, LocalAddr => "::1", Proto => "tcp") or die "$!\n"' 2>&1); then
		fail "cannot listen on [::1] ($(echo "$err" | firstline)): the Sendmail test's IPv6 client needs IPv6 on loopback"
	fi

	# swaks: the features and the options the tests use.
	swaks_version=""
	if ! swaks=$(command -v swaks); then
		fail "swaks is not installed (Debian package swaks)"
	else
		swaks_version=$(swaks --version 2>/dev/null | sed -n 's/^swaks version //p' | head -n 1)
		swaks --support >"$tmp/support" 2>&1 || true
		echo "$swaks_features" | while IFS= read -r feature; do
			if ! grep -qx "=== $feature supported" "$tmp/support"; then
				why=$(grep "^\*\*\* $feature not available" "$tmp/support" | sed 's/^\*\*\* //' | firstline)
				echo "swaks cannot do $feature (swaks --support: ${why:-not listed as supported})"
			fi
		done >"$tmp/swaks-missing"
		while IFS= read -r line; do
			fail "$line"
		done <"$tmp/swaks-missing"
		# A dry run with every option the Postfix and Sendmail tests pass
		# (--dump prints the options and exits: nothing is sent).
		if ! "$swaks" --dump --server 127.0.0.1:25 --timeout 20s --ehlo test.example \
			--from x@sender.example --to user@receiver.example --add-header "X-E2E-Case: check" \
			--proxy-version 2 --proxy-family AF_INET --proxy-source 192.0.2.1 --proxy-source-port 40000 \
			--proxy-dest 127.0.0.1 --proxy-dest-port 25 \
			--local-interface 127.0.0.1 --local-port 40001 >"$tmp/dump" 2>&1; then
			fail "swaks ${swaks_version:-?} does not take the options the tests pass (--proxy-*, --local-interface, --local-port, --add-header): $(grep -v -e '^===' -e '^\*\*\* .* not available' "$tmp/dump" | firstline)"
		fi
	fi

	# miltertest: runs a Lua script (as the tests do with -s and -D).
	mt_version=""
	if ! miltertest=$(command -v miltertest); then
		fail "miltertest is not installed (Debian package miltertest)"
	else
		mt_version=$("$miltertest" -V 2>&1 | sed -n 's/.* v\([0-9][0-9.]*\).*/\1/p' | head -n 1)
		echo 'if ok ~= "yes" then error("-D did not define ok") end mt.echo("miltertest runs")' >"$tmp/check.lua"
		if ! out=$("$miltertest" -s "$tmp/check.lua" -D ok=yes 2>&1) || [ "$out" != "miltertest runs" ]; then
			fail "miltertest does not run a Lua script: $(echo "$out" | firstline)"
		fi
	fi

	# What the Sendmail test runs besides Sendmail.
	if ! command -v m4 >/dev/null 2>&1; then
		fail "m4 is not installed (Debian package m4): the Sendmail test builds sendmail.cf with it"
	fi
	if ! command -v hostname >/dev/null 2>&1; then
		fail "hostname is not installed (Debian package hostname): the Sendmail test names its UTS namespace with it"
	fi
	uts=1
	if ! err=$(unshare --uts true 2>&1); then
		uts=0
		case "$(hostname 2>/dev/null)" in
		*.*) ;;
		*) fail "no UTS namespace (unshare --uts: $(echo "$err" | firstline)) and the host name '$(hostname 2>/dev/null)' is unqualified: Sendmail would ask DNS to qualify it" ;;
		esac
	fi
	if [ ! -d /run ] || [ ! -w /run ]; then
		fail "/run is not a writable directory: the Sendmail test puts heloguard's socket under /run"
	fi

	# Sendmail, unpacked.
	sm_version=""
	if [ ! -x "$sendmail_bin" ]; then
		fail "Sendmail is not unpacked: $sendmail_bin is missing (run deploy/install-test-deps.sh; HELOGUARD_SENDMAIL_ROOT=DIR for another directory)"
	elif ldd "$sendmail_bin" 2>/dev/null | grep -q 'not found'; then
		fail "the unpacked sendmail lacks libraries: $(ldd "$sendmail_bin" | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | tr '\n' ' ')(libwrap0 and liblockfile1 provide them)"
	else
		# -d0.1 prints the version and the compile options; in a UTS namespace
		# with a qualified name, so that it asks no DNS for its own name.
		if [ "$uts" -eq 1 ]; then
			# shellcheck disable=SC2016
			out=$(timeout 20 unshare --uts sh -c 'hostname mx.receiver.example && exec "$1" -d0.1 -bt -C /dev/null </dev/null' sh "$sendmail_bin" 2>&1) || true
		else
			out=$(timeout 20 "$sendmail_bin" -d0.1 -bt -C /dev/null </dev/null 2>&1) || true
		fi
		sm_version=$(echo "$out" | sed -n 's/^Version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
		if [ -z "$sm_version" ]; then
			fail "the unpacked sendmail does not run: $sendmail_bin -d0.1 said: $(echo "$out" | firstline)"
		elif ! echo "$out" | grep -qw MILTER; then
			fail "the unpacked sendmail $sm_version is built without MILTER"
		fi
	fi
	if [ ! -f "$sendmail_cf/m4/cf.m4" ]; then
		fail "sendmail-cf is not unpacked: $sendmail_cf/m4/cf.m4 is missing (run deploy/install-test-deps.sh)"
	elif command -v m4 >/dev/null 2>&1; then
		cat >"$tmp/check.mc" <<EOF
include(\`$sendmail_cf/m4/cf.m4')dnl
OSTYPE(\`linux')dnl
MAILER(\`local')dnl
EOF
		if ! m4 "$tmp/check.mc" >"$tmp/check.cf" 2>"$tmp/m4.err" || [ -s "$tmp/m4.err" ] ||
			! grep -q '^DZ8\.' "$tmp/check.cf"; then
			fail "m4 does not build a sendmail.cf from $sendmail_cf: $(firstline <"$tmp/m4.err")"
		fi
	fi

	# Unbound, the shared caching resolver of deploy/fleet (run by the test
	# with its own config on loopback; the system's unbound service is not used).
	if [ ! -x /usr/sbin/unbound ] || [ ! -x /usr/sbin/unbound-checkconf ]; then
		fail "Unbound is not installed (/usr/sbin/unbound, unbound-checkconf; Debian package unbound): deploy/fleet runs it"
	elif ! out=$(/usr/sbin/unbound -V 2>&1); then
		fail "unbound -V does not run: $(echo "$out" | firstline)"
	fi
	# What deploy/deb uses to build, check, install and purge the package.
	for tool in dpkg-deb dpkg-query lintian logrotate adduser runuser userdel groupdel man groff; do
		if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
			fail "$tool is not installed: deploy/deb needs it (Debian packages: dpkg, lintian, logrotate, adduser, util-linux, passwd, man-db, groff-base)"
		fi
	done
	lintian_version=""
	if command -v lintian >/dev/null 2>&1 && ! lintian_version=$(lintian --version 2>&1 | sed -n 's/^Lintian v//p'); then
		fail "lintian --version does not run"
	fi
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		fail "systemd-analyze is not installed (Debian package systemd): TestSystemdUnit and deploy/deb verify the unit with it"
	else
		printf '[Unit]\nDescription=check\n[Service]\nExecStart=/bin/true\n' >"$tmp/check.service"
		if ! out=$(systemd-analyze verify --man=no "$tmp/check.service" 2>&1) || [ -n "$out" ]; then
			fail "systemd-analyze verify does not verify a unit: $(echo "$out" | firstline)"
		fi
	fi
	if command -v logrotate >/dev/null 2>&1; then
		printf '%s {\n\tmissingok\n}\n' "$tmp/check.log" >"$tmp/check.logrotate"
		if ! out=$(logrotate --debug "$tmp/check.logrotate" 2>&1); then
			fail "logrotate --debug does not parse a config: $(echo "$out" | firstline)"
		fi
	fi

	# Prometheus and promtool, for deploy/prometheus: the test runs its own
	# prometheus on a free loopback port, and promtool check metrics.
	prom_version=""
	if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
		fail "Prometheus is not installed (prometheus, promtool; Debian package prometheus): deploy/prometheus runs them"
	elif ! out=$(prometheus --version 2>&1); then
		fail "prometheus --version does not run: $(echo "$out" | firstline)"
	elif ! out=$(promtool --version 2>&1); then
		fail "promtool --version does not run: $(echo "$out" | firstline)"
	else
		prom_version=$(prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')
		printf '# HELP x_total A check.\n# TYPE x_total counter\nx_total 1\n' >"$tmp/metrics"
		if ! out=$(promtool check metrics <"$tmp/metrics" 2>&1); then
			fail "promtool check metrics does not pass a good page: $(echo "$out" | firstline)"
		fi
	fi

	rm -rf "$tmp"
	trap - EXIT
	if [ "$failed" -ne 0 ]; then
		if [ "$mode" = verify ]; then
			echo "$me: $failed check(s) failed; deploy/install-test-deps.sh (as root) installs what the tests need" >&2
		else
			echo "$me: $failed check(s) failed after the install" >&2
		fi
		return 1
	fi
	echo "$me: ok: Postfix $pf_version, swaks $swaks_version with IPv6, miltertest $mt_version, Sendmail $sm_version in $sendmail_root, $(m4 --version | head -n 1), lintian $lintian_version, $(systemd-analyze --version | head -n 1), $(logrotate --version 2>&1 | head -n 1), $(/usr/sbin/unbound -V 2>/dev/null | sed -n "s/^Version //p") unbound"
	echo "$me: ok: Prometheus $prom_version and its promtool (deploy/prometheus)"
}

if [ "$mode" = verify ]; then
	verify
	exit $?
fi

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E sh "$0" "$@"
	fi
	echo "$me: must run as root (or with sudo available)" >&2
	exit 1
fi

missing=""
for p in $packages $deb_packages $sendmail_libs; do
	if ! installed "$p"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "$me: already installed: $packages $deb_packages $sendmail_libs"
else
	echo "$me: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix: do not configure a mail system.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "postfix postfix/mailname string mx.receiver.example" | debconf-set-selections
	apt-get update
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends \
		-o DPkg::Lock::Timeout=300 \
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
		echo "$me: no installable version of $p" >&2
		exit 1
	fi
	want="$want $p=$v"
done
stamp="$sendmail_root/.extracted"
if [ -x "$sendmail_bin" ] && [ -d "$sendmail_cf/m4" ] &&
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "$me: Sendmail already extracted in $sendmail_root ($want )"
else
	echo "$me: extracting Sendmail into $sendmail_root ($want )"
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

# Prometheus (prometheus and promtool), for deploy/prometheus, which runs its
# own instance on a free loopback port. Debian's package enables a prometheus
# service on port 9090: the install must not start it. A policy-rc.d that
# refuses every start stands in for the install (the machine's own, if any,
# is put back after it), and the service is then disabled and, should
# anything have started it, stopped.
if ! installed prometheus; then
	echo "$me: installing: prometheus (its service is not started)"
	rcd=/usr/sbin/policy-rc.d
	saved=""
	if [ -e "$rcd" ]; then
		saved=$(mktemp)
		cp -p "$rcd" "$saved"
	fi
	restore_rcd() {
		if [ -n "$saved" ]; then
			cp -p "$saved" "$rcd" && rm -f "$saved"
		else
			rm -f "$rcd"
		fi
	}
	trap restore_rcd EXIT
	printf '#!/bin/sh\n# %s: no service starts while it installs prometheus\nexit 101\n' "$me" >"$rcd"
	chmod 755 "$rcd"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 prometheus
	restore_rcd
	trap - EXIT
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable prometheus.service >/dev/null 2>&1 || true
		if [ -d /run/systemd/system ]; then
			systemctl stop prometheus.service >/dev/null 2>&1 || true
		fi
	fi
fi

verify
