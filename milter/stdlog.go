package milter

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// LibraryLog is an io.Writer for the standard library's log package, where
// go-milter writes its own messages ("Error reading milter command: …",
// "Unrecognized command code: %s" with a byte the peer chose, …). It turns each line into a structured operational log line, so the
// stream keeps one format and no raw peer byte reaches it: slog's JSON escapes
// control bytes and replaces invalid UTF-8.
//
// serve points log.SetOutput at it once at start (go-milter offers no logger
// of its own to set).
type LibraryLog struct {
	Log *slog.Logger
}

func (l LibraryLog) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		msg := string(line)
		level := slog.LevelWarn
		switch {
		case strings.Contains(msg, "panic"):
			level = slog.LevelError
		case strings.Contains(msg, "could not send the needed macros"):
			// An MTA that lets a milter ask for no macros (Postfix with
			// milter_protocol = 2): it sends its defaults, which hold the
			// ones heloguard reads. Said once per session: not a warning.
			level = slog.LevelDebug
		}
		l.Log.Log(context.Background(), level, "milter library", "detail", msg)
	}
	return len(p), nil
}
