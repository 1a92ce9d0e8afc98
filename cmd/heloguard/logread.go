package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/heloguard/heloguard/policy/record"
)

// Why a line of a log is not a decision record, for the counts replay and the
// summary print: no line is dropped without being counted.
const (
	skipNotDecision = "not a decision record"
	skipUnreadable  = "unreadable (not JSON, or a damaged record)"
	skipTooLong     = "longer than 1 MiB"
)

// logLines calls fn with each decision record of the named inputs, in order:
// files, gzip files (by their magic bytes), "-" for standard input. A line is
// a record as heloguard writes it; a journald export (`journalctl -o json`)
// whose MESSAGE holds one; or a line with a prefix (syslog, `journalctl` short
// output) before the record's opening brace. `journalctl -o cat` gives plain
// records. skipped counts every other line by reason.
func logLines(names []string, stdin io.Reader, skipped map[string]int, progress func(lines int), fn func(r *record.Record) error) (lines int, err error) {
	for _, name := range names {
		n, err := logFile(name, stdin, skipped, progress, lines, fn)
		lines += n
		if err != nil {
			return lines, err
		}
	}
	return lines, nil
}

func logFile(name string, stdin io.Reader, skipped map[string]int, progress func(int), before int, fn func(*record.Record) error) (int, error) {
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReaderSize(in, 256*1024)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("%s: %v", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256*1024)
	}
	return readParsed(name, br, skipped, progress, before, fn)
}

// batch is a run of lines parsed by a worker while the next are read.
type batch struct {
	buf   []byte
	ends  []int // end offset in buf of each line
	recs  []record.Record
	whys  []string
	lines int // lines read, blank ones included
	done  chan struct{}
}

const batchLines = 512

// readParsed reads lines and parses them on every core, and hands the records
// to fn in the order of the input, on the caller's goroutine. Parsing is most
// of replay's work: this is what makes it read a log at several hundred
// thousand lines a second on two cores.
func readParsed(name string, r io.Reader, skipped map[string]int, progress func(int), before int, fn func(*record.Record) error) (int, error) {
	work := make(chan *batch, runtime.GOMAXPROCS(0))
	order := make(chan *batch, 2*runtime.GOMAXPROCS(0))
	stop := make(chan struct{})
	defer close(stop)
	// Batches are recycled: a fresh 400 KB buffer for every 512 lines kept the
	// garbage collector busier than the parsing.
	free := make(chan *batch, 2*runtime.GOMAXPROCS(0)+2)
	newBatch := func() *batch {
		select {
		case b := <-free:
			b.buf, b.ends, b.lines, b.done = b.buf[:0], b.ends[:0], 0, make(chan struct{})
			return b
		default:
			return &batch{done: make(chan struct{})}
		}
	}
	var readErr error
	go func() { // the reader
		defer close(work)
		defer close(order)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		b := newBatch()
		send := func() bool {
			select {
			case order <- b:
			case <-stop:
				return false
			}
			select {
			case work <- b:
			case <-stop:
				return false
			}
			b = newBatch()
			return true
		}
		for sc.Scan() {
			b.lines++
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				b.buf = append(b.buf, line...)
				b.ends = append(b.ends, len(b.buf))
			}
			if len(b.ends) == batchLines && !send() {
				return
			}
		}
		readErr = sc.Err() // read by the consumer after order is closed
		send()
	}()
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		go func() {
			for b := range work {
				if cap(b.recs) < len(b.ends) {
					b.recs, b.whys = make([]record.Record, len(b.ends)), make([]string, len(b.ends))
				}
				b.recs, b.whys = b.recs[:len(b.ends)], b.whys[:len(b.ends)]
				start := 0
				for i, end := range b.ends {
					b.recs[i], b.whys[i] = parseLogLine(b.buf[start:end])
					start = end
				}
				close(b.done)
			}
		}()
	}
	lines := 0
	for b := range order {
		<-b.done
		lines += b.lines
		for i := range b.recs {
			if b.whys[i] != "" {
				skipped[b.whys[i]]++
				continue
			}
			if err := fn(&b.recs[i]); err != nil {
				return lines, err
			}
		}
		if progress != nil && lines/65536 != (lines-b.lines)/65536 {
			progress(before + lines)
		}
		select { // fn is done with the batch's records: reuse it
		case free <- b:
		default:
		}
	}
	if readErr != nil {
		if errors.Is(readErr, bufio.ErrTooLong) {
			skipped[skipTooLong]++
			return lines, fmt.Errorf("%s: line %d is longer than 1 MiB; is this a decision log?", name, lines+1)
		}
		return lines, fmt.Errorf("%s: %v", name, readErr)
	}
	return lines, nil
}

// parseLogLine finds the decision record in one line; why says what the line
// is when it holds none.
func parseLogLine(line []byte) (record.Record, string) {
	if line[0] != '{' {
		// A prefix before the record: syslog or journalctl's short format.
		i := bytes.Index(line, []byte(`{"time":`))
		if i < 0 {
			return record.Record{}, skipNotDecision
		}
		line = line[i:]
	}
	r, err := record.Parse(line)
	if err == nil {
		return r, ""
	}
	if !errors.Is(err, record.ErrNotDecision) {
		return r, skipUnreadable
	}
	// journalctl -o json: the record is the MESSAGE field, a string, or an
	// array of bytes when it was not valid UTF-8.
	var j struct {
		Message json.RawMessage `json:"MESSAGE"`
	}
	if json.Unmarshal(line, &j) != nil || len(j.Message) == 0 {
		return r, skipNotDecision
	}
	var msg []byte
	var s string
	if json.Unmarshal(j.Message, &s) == nil {
		msg = []byte(s)
	} else if json.Unmarshal(j.Message, &msg) != nil {
		var nums []int
		if json.Unmarshal(j.Message, &nums) != nil {
			return r, skipNotDecision
		}
		msg = make([]byte, len(nums))
		for i, n := range nums {
			msg[i] = byte(n)
		}
	}
	if len(msg) == 0 || msg[0] != '{' {
		return r, skipNotDecision
	}
	r, err = record.Parse(msg)
	switch {
	case errors.Is(err, record.ErrNotDecision):
		return r, skipNotDecision
	case err != nil:
		return r, skipUnreadable
	}
	return r, ""
}

// progressTo returns a function printing a progress line to w when w is a
// terminal, nil otherwise.
func progressTo(w io.Writer) func(int) {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return func(lines int) { fmt.Fprintf(f, "\rheloguard: %d lines read", lines) }
}
