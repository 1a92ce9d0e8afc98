package milter

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// maxSunPath is the longest path a unix socket can be bound to on Linux
// (sun_path holds 108 bytes, NUL included).
const maxSunPath = 107

// listenUnix listens on a unix socket at path that has mode and group from
// the moment it appears there. The socket is bound in a private directory
// (0700) made beside path, given its group and mode there, and then linked
// to path: link(2) fails if anything exists at path, and follows no symlink
// there. So the socket is never visible with the umask's mode or the wrong
// group, nothing is changed through a link an attacker may plant at path
// between bind and chmod, and no process-wide umask is touched.
//
// (fchmod on the socket before bind does reach the file's mode on Linux, but
// the umask is applied after it: 0660 becomes 0640 under systemd's default
// umask 0022, and the MTA's group could not connect.)
//
// Only a stale socket at path is removed first (a socket nobody accepts on);
// anything else there is an error naming it.
func listenUnix(path string, mode os.FileMode, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("socket_group %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("socket_group %q: gid %q", group, g.Gid)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".hg")
	if err != nil {
		return nil, fmt.Errorf("a private directory beside %s to create the socket in: %w", path, err)
	}
	defer os.Remove(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxSunPath {
		return nil, fmt.Errorf("%s: the socket is first created as %s, longer than a unix socket path may be (%d bytes); choose a shorter path", path, tmp, maxSunPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // it lives on at path; the listener removes that
	defer os.Remove(tmp)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		return nil, err
	}
	// By name, but in a directory only we can write to, just after bind made
	// the entry: no link can be there.
	if gid >= 0 {
		if err := os.Lchown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("socket_group %s: %w", group, err))
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("socket_mode: %w", err))
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(fmt.Errorf("%s appeared while the socket was being created; it is left as it is", path))
		}
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ln, path: path, fi: fi}, nil
}

// removeStale makes way for a new socket at path: nothing there is fine, a
// socket that refuses connections is removed, and anything else is an error.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket but %s; heloguard replaces only a stale socket: remove it, or listen elsewhere", path, describeType(fi.Mode()))
	}
	c, err := net.Dial("unix", path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("another process is listening on %s", path)
	case !errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot tell whether the socket %s is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket: %w", err)
	}
	return nil
}

func describeType(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeDir:
		return "a directory"
	case 0:
		return "a regular file"
	case fs.ModeNamedPipe:
		return "a named pipe"
	}
	return "a special file (" + m.Type().String() + ")"
}

// unixListener is a unix socket listener that reports the socket's path as
// its address and, on Close, removes the socket at that path only if it is
// still the one it created.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if cur, e := os.Lstat(l.path); e == nil && os.SameFile(cur, l.fi) {
		_ = os.Remove(l.path)
	}
	return err
}
