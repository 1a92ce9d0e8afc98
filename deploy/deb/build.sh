#!/bin/sh
# Builds the Debian package heloguard_<version>_<arch>.deb (make deb): the
# files are staged in a temporary tree, with modes set by install(1), and
# packed by dpkg-deb --root-owner-group. No debhelper, no fakeroot, no source
# package: dpkg-deb is on every Debian system, and what the package holds is
# spelled out here, file by file. deploy/deb/deb_test.go builds it, runs
# lintian on it, installs, removes and purges it.
#
#   deploy/deb/build.sh [-o DIR]     write the .deb into DIR (default: the
#                                    repository's top directory); prints its path
#
# Environment:
#   VERSION         the upstream version (default: the tag vX.Y.Z at HEAD, else
#                   0.0~gitYYYYMMDD.COMMIT, a snapshot that sorts before 0.0)
#   DEB_REVISION    the Debian revision (default 1)
#   DEB_MAINTAINER  the Maintainer field (default below; or DEBFULLNAME and DEBEMAIL)
#   GO              the go command (default go); GOARCH (and GOARM) cross-build
#   SOURCE_DATE_EPOCH  file and changelog dates (default: the commit's time)
set -eu

me=build.sh
usage() {
	echo "usage: $me [-o DIR]" >&2
	exit 2
}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$top
while getopts o: opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
cd "$top"
umask 022
GO=${GO:-go}

for tool in dpkg-deb gzip md5sum "$GO"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$me: $tool is not installed (dpkg-deb: Debian package dpkg)" >&2
		exit 1
	fi
done

# The version, the commit and the dates.
commit=$(git rev-parse HEAD 2>/dev/null || true)
modified=false
if [ -n "$commit" ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	modified=true
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
if [ -z "${VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		VERSION=${tag#v}
	elif [ -n "$commit" ]; then
		VERSION=0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$(echo "$commit" | cut -c1-7)
	else
		echo "$me: not a git checkout: set VERSION" >&2
		exit 1
	fi
fi
case $VERSION in
[0-9]*) ;;
*)
	echo "$me: VERSION $VERSION must start with a digit (Debian policy 5.6.12)" >&2
	exit 1
	;;
esac
debversion=$VERSION-${DEB_REVISION:-1}
if [ -z "${DEB_MAINTAINER:-}" ]; then
	if [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
		DEB_MAINTAINER="$DEBFULLNAME <$DEBEMAIL>"
	else
		DEB_MAINTAINER="heloguard maintainers <maintainers@heloguard.invalid>"
	fi
fi

# Debian's name for the Go architecture.
goarch=$("$GO" env GOARCH)
case $goarch in
amd64 | arm64 | s390x | riscv64 | loong64) arch=$goarch ;;
386) arch=i386 ;;
ppc64le) arch=ppc64el ;;
mips64le) arch=mips64el ;;
arm)
	if [ "$("$GO" env GOARM)" = 5 ]; then arch=armel; else arch=armhf; fi
	;;
*)
	echo "$me: no Debian architecture for GOARCH=$goarch" >&2
	exit 1
	;;
esac
deb="$out/heloguard_${debversion}_${arch}.deb"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
for d in DEBIAN usr/sbin etc/heloguard etc/logrotate.d lib/systemd/system \
	usr/share/man/man5 usr/share/man/man8 usr/share/doc/heloguard/examples \
	usr/share/heloguard/grafana usr/share/lintian/overrides; do
	install -d -m 0755 "$root/$d"
done

# The binary: no cgo (no libc dependency), position-independent (lintian
# hardening; and a non-PIE static binary is its statically-linked-binary
# error), stripped (-s -w keeps the build info that `heloguard version`
# reads), paths trimmed for reproducibility.
ldflags="-s -w -X main.version=$VERSION -X main.commit=$commit -X main.commitModified=$modified"
CGO_ENABLED=0 "$GO" build -buildmode=pie -trimpath -buildvcs=auto -ldflags "$ldflags" -o "$root/usr/sbin/heloguard" ./cmd/heloguard
chmod 0755 "$root/usr/sbin/heloguard"
# The man pages, written by the binary from its flags and the example config
# (a binary for this machine when cross-building).
hostbin=$root/usr/sbin/heloguard
if [ "$goarch" != "$(env -u GOARCH -u GOOS "$GO" env GOARCH)" ] || [ "$("$GO" env GOOS)" != linux ]; then
	hostbin=$stage/heloguard-host
	env -u GOARCH -u GOOS -u GOARM CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-X main.version=$VERSION" -o "$hostbin" ./cmd/heloguard
fi
"$hostbin" man 8 | gzip -9n >"$root/usr/share/man/man8/heloguard.8.gz"
"$hostbin" man 5 | gzip -9n >"$root/usr/share/man/man5/heloguard.yaml.5.gz"

install -m 0644 deploy/heloguard.yaml "$root/etc/heloguard/heloguard.yaml"
install -m 0644 deploy/deb/heloguard.logrotate "$root/etc/logrotate.d/heloguard"
install -m 0644 deploy/heloguard.service "$root/lib/systemd/system/heloguard.service"

doc=$root/usr/share/doc/heloguard
install -m 0644 deploy/deb/copyright "$doc/copyright"
gzip -9n <README.md >"$doc/README.md.gz"
for d in admin rules reference; do
	gzip -9n <"docs/$d.md" >"$doc/$d.md.gz"
done
install -m 0644 deploy/postfix/main.cf.snippet "$doc/examples/main.cf.snippet"
install -m 0644 deploy/sendmail/heloguard.mc "$doc/examples/heloguard.mc"
cat >"$stage/changelog" <<EOF
heloguard ($debversion) unstable; urgency=medium

  * Built from the heloguard repository at commit
    ${commit:-unknown}.

 -- $DEB_MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n <"$stage/changelog" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc"/*.gz "$root"/usr/share/man/man*/*.gz

install -m 0644 deploy/deb/lintian-overrides "$root/usr/share/lintian/overrides/heloguard"

# Reserved for the Grafana dashboard; included once deploy/grafana has it.
if [ -f deploy/grafana/heloguard.json ]; then
	install -m 0644 deploy/grafana/heloguard.json "$root/usr/share/heloguard/grafana/heloguard.json"
fi

# Control files.
for s in postinst prerm postrm; do
	install -m 0755 "deploy/deb/$s" "$root/DEBIAN/$s"
done
printf '%s\n' /etc/heloguard/heloguard.yaml /etc/logrotate.d/heloguard >"$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's,^\./,,' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: heloguard
Version: $debversion
Architecture: $arch
Maintainer: $DEB_MAINTAINER
Installed-Size: $size
Depends: adduser
Suggests: postfix | sendmail-bin, logrotate
Section: mail
Priority: optional
Description: reverse-DNS and HELO policy milter for Postfix and Sendmail
 heloguard judges the connecting client's reverse DNS (forward-confirmed,
 RFC 8601 iprev) and its HELO/EHLO name, and refuses forgers with a reply
 that says what is wrong. A HELO that shares the organizational domain of
 the client's confirmed PTR name is accepted when the HELO's SPF record
 authorizes the client, so big senders such as Office 365, whose HELO is a
 generic per-datacentre name, get through while a forger who copies that
 HELO does not.
 .
 It adds an Authentication-Results header, logs one JSON decision record per
 session, and has tools to explain a decision on live DNS, test rules
 against scenario files and replay logged decisions.
EOF
chmod 0644 "$root/DEBIAN/control"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
