package milter_test

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// continueMilter is the floor: a go-milter backend that does nothing and keeps
// its state (continue everywhere, as heloguard does).
type continueMilter struct{ gomilter.NoOpMilter }

func (continueMilter) Body(*gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// BenchmarkSessions runs full SMTP-shaped milter sessions (connect, helo, mail,
// rcpt ×2, headers, body, eom, abort, quit) over a unix socket, against a
// do-nothing go-milter server and against heloguard with a warm cache, in the
// same run. Target: heloguard ≥ 90% of the floor's sessions/s, p99 within 1.2×.
func BenchmarkSessions(b *testing.B) {
	b.Run("noop", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "noop.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return continueMilter{} },
			Actions: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine}
		go srv.Serve(ln)
		defer ln.Close()
		runSessions(b, sock, "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com")
	})
	b.Run("heloguard", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "hg.sock")
		startOn(b, "unix:"+sock, "max_sessions: 10000\n")
		runSessions(b, sock, "104.47.38.131", "NAM02-BL2-obe.outbound.protection.outlook.com")
	})
}

func runSessions(b *testing.B, sock, ip, helo string) {
	client := gomilter.NewClientWithOptions("unix", sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	one := func() error {
		s, err := client.Session()
		if err != nil {
			return err
		}
		defer s.Close()
		steps := []func() (*gomilter.Action, error){
			func() (*gomilter.Action, error) { return s.Conn("["+ip+"]", gomilter.FamilyInet, 40000, ip) },
			func() (*gomilter.Action, error) { return s.Helo(helo) },
			func() (*gomilter.Action, error) { return s.Mail("<a@contoso.example>", nil) },
			func() (*gomilter.Action, error) { return s.Rcpt("<u1@receiver.example>", nil) },
			func() (*gomilter.Action, error) { return s.Rcpt("<u2@receiver.example>", nil) },
			func() (*gomilter.Action, error) { return s.HeaderField("Subject", "hello") },
			func() (*gomilter.Action, error) { return s.HeaderEnd() },
			func() (*gomilter.Action, error) { return s.BodyChunk([]byte("body\r\n")) },
		}
		for _, step := range steps {
			a, err := step()
			if err != nil {
				return err
			}
			if a.Code != gomilter.ActContinue {
				return fmt.Errorf("unexpected %c", a.Code)
			}
		}
		if _, _, err := s.End(); err != nil {
			return err
		}
		return s.Abort()
	}
	if err := one(); err != nil { // warm the caches
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := one(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
