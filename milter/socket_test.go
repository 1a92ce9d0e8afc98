package milter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	gomilter "github.com/d--j/go-milter"
	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/milter"
	"github.com/heloguard/heloguard/policy"
)

// Unix sockets: created with their mode and group, never through a link, and
// only a stale socket is ever removed.

// newServer is a milter server for config YAML, not yet listening, and
// without a resolver: only trusted clients may connect.
func newServer(t *testing.T, yml string) (*milter.Server, *config.Config) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	srv := milter.New(&milter.State{Cfg: cfg, Engine: policy.New(cfg.PolicyOptions(nil))}, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return srv, cfg
}

// serve runs srv until the test ends.
func serve(t *testing.T, srv *milter.Server) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		_ = srv.Shutdown(t.Context())
		<-done
	})
}

// attrChanges watches dir with inotify and returns a function that reports
// the names in dir whose attributes (mode, owner) changed since.
func attrChanges(t *testing.T, dir string) func() []string {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		var names []string
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil || n <= 0 {
				return names // EAGAIN: nothing more queued
			}
			for b := buf[:n]; len(b) >= syscall.SizeofInotifyEvent; {
				l := int(binary.NativeEndian.Uint32(b[12:16]))
				name := string(bytes.TrimRight(b[syscall.SizeofInotifyEvent:syscall.SizeofInotifyEvent+l], "\x00"))
				names = append(names, name)
				b = b[syscall.SizeofInotifyEvent+l:]
			}
		}
	}
}

// testGroup is a group other than our own that we may give a file to, or "".
func testGroup(t *testing.T) (name string, gid int) {
	if os.Geteuid() != 0 {
		return "", -1
	}
	for _, n := range []string{"daemon", "bin", "sys", "adm", "nogroup"} {
		if g, err := user.LookupGroup(n); err == nil {
			id, _ := strconv.Atoi(g.Gid)
			if id != os.Getegid() {
				return n, id
			}
		}
	}
	return "", -1
}

// The socket has its mode and group when it appears: it is never chmod'ed or
// chown'ed at its path, where it would first have the umask's mode and where
// a link planted in between would be followed.
func TestUnixSocketCreatedWithModeAndGroup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heloguard.sock")
	yml := "listen: unix:" + path + "\nsocket_mode: \"0660\"\n"
	group, gid := testGroup(t)
	if group != "" {
		yml += "socket_group: " + group + "\n"
	}
	srv, _ := newServer(t, yml)
	changed := attrChanges(t, dir)
	addr, err := srv.Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v right after Listen, want a socket with 0660", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); group != "" && int(st.Gid) != gid {
		t.Errorf("socket group %d, want %d (%s)", st.Gid, gid, group)
	}
	if names := changed(); len(names) > 0 {
		t.Errorf("attributes changed at the socket's path after it appeared: %q", names)
	}
	if addr.String() != path {
		t.Errorf("Listen's address %q, want %q", addr, path)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the socket's directory holds %v, want the socket alone", entries)
	}
	// It serves.
	serve(t, srv)
	cs, err := gomilter.NewClient("unix", path).Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	// A trusted client: the server has no resolver.
	if a, err := cs.Conn("localhost", gomilter.FamilyInet, 40000, "127.0.0.1"); err != nil || a.Type != gomilter.ActionContinue {
		t.Errorf("connect: %v %v", a, err)
	}
	cs.Close()
	// Shutdown removes it.
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Shutdown: %v", err)
	}
}

// Something other than a socket at the path is an error that names it, and
// is left as it is: a symlink is not followed, a file is not removed.
func TestUnixSocketPathNotASocket(t *testing.T) {
	for _, kind := range []string{"symlink", "symlink to a socket", "file", "directory"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "heloguard.sock")
			target := filepath.Join(dir, "target")
			switch kind {
			case "symlink":
				if err := os.WriteFile(target, []byte("secret"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			case "symlink to a socket":
				ln, err := net.Listen("unix", target)
				if err != nil {
					t.Fatal(err)
				}
				ln.(*net.UnixListener).SetUnlinkOnClose(false)
				ln.Close() // stale: nobody listens
				if err := os.Chmod(target, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			case "file":
				if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
					t.Fatal(err)
				}
			case "directory":
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.Lstat(path)
			var targetBefore os.FileInfo
			if kind != "file" && kind != "directory" {
				targetBefore, _ = os.Lstat(target)
			}
			srv, _ := newServer(t, "listen: unix:"+path+"\nsocket_mode: \"0666\"\n")
			_, err := srv.Listen("unix:" + path)
			if err == nil {
				t.Fatalf("Listen over a %s succeeded", kind)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a socket") {
				t.Errorf("error %q does not name %s as not a socket", err, path)
			}
			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Errorf("%s at the path changed: %v %v -> %v", kind, err, before.Mode(), after)
			}
			if targetBefore != nil {
				if ta, err := os.Lstat(target); err != nil || ta.Mode() != targetBefore.Mode() {
					t.Errorf("the link's target changed: %v -> %v (%v)", targetBefore.Mode(), ta, err)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != map[bool]int{true: 2, false: 1}[targetBefore != nil] {
				t.Errorf("directory holds %v", entries)
			}
		})
	}
}

// A stale socket (nobody listening) is replaced; a live one is an error.
func TestUnixSocketStaleAndLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heloguard.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := newServer(t, "listen: unix:"+path+"\n")
	if _, err := srv.Listen("unix:" + path); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Errorf("Listen over a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := srv.Listen("unix:" + path); err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	serve(t, srv)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the new socket does not answer: %v", err)
	}
	c.Close()
}

// Shutdown removes the socket only if it is still ours: a file put in its
// place meanwhile stays.
func TestUnixSocketRemovedOnlyIfOurs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "heloguard.sock")
	srv, _ := newServer(t, "listen: unix:"+path+"\n")
	if _, err := srv.Listen("unix:" + path); err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "x" {
		t.Errorf("the file in the socket's place: %q %v", b, err)
	}
}
