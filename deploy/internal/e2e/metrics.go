package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Scrape fetches the daemon's metrics page (Config.Metrics must be set), as
// Prometheus does.
func (d *Daemon) Scrape(t testing.TB) string {
	t.Helper()
	if d.Cfg.Metrics == "" {
		t.Fatal("Scrape: the daemon was started without Config.Metrics")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + d.Cfg.Metrics + "/metrics")
	if err != nil {
		t.Fatalf("scraping heloguard: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping heloguard: %s %v\n%s", resp.Status, err, b)
	}
	return string(b)
}
