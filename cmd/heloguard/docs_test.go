package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// The docs' tables of config keys, evidence fields, placeholders, built-in
// rules and decision-record fields are derived from the code's own tables;
// these tests fail when they drift, and print the table to paste. A table is
// the text between <!-- name: ... --> and <!-- /name --> in the file named.

// doc reads a file of the repository, by its path from the top.
func doc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is the text between <!-- name: ... --> and <!-- /name -->.
func section(t *testing.T, path, name string) string {
	t.Helper()
	text := doc(t, path)
	start := strings.Index(text, "<!-- "+name+":")
	end := strings.Index(text, "<!-- /"+name+" -->")
	if start < 0 || end < start {
		t.Fatalf("%s has no %s section", path, name)
	}
	body := text[start:end]
	return body[strings.Index(body, "-->\n")+4:]
}

// firstColumn is the first cell of each row of a markdown table, without its
// backquotes; the header and the separator row are left out.
func firstColumn(table string) []string {
	var col []string
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		if i < 2 {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		col = append(col, strings.Trim(strings.TrimSpace(cells[1]), "`"))
	}
	return col
}

func TestDocsEvidenceTable(t *testing.T) {
	var b strings.Builder
	b.WriteString("| field | values | meaning |\n|---|---|---|\n")
	for _, f := range policy.Fields() {
		values := string(f.Kind)
		switch f.Kind {
		case policy.KindEnum:
			values = strings.Join(f.Values, ", ")
		case policy.KindBool:
			values = "true, false"
		}
		b.WriteString("| `" + f.Name + "` | " + values + " | " + f.Meaning + " |\n")
	}
	for _, path := range []string{"docs/reference.md", "docs/rules.md"} {
		if got := section(t, path, "evidence-table"); got != b.String() {
			t.Errorf("%s's evidence table differs from policy/fields.go; it should read:\n%s", path, b.String())
		}
	}
}

func TestDocsPlaceholderTable(t *testing.T) {
	var b strings.Builder
	b.WriteString("| placeholder | meaning |\n|---|---|\n")
	for _, p := range policy.Placeholders() {
		b.WriteString("| `" + p.Name + "` | " + p.Meaning + " |\n")
	}
	if got := section(t, "docs/reference.md", "placeholder-table"); got != b.String() {
		t.Errorf("docs/reference.md's placeholder table differs from policy/placeholders.go; it should read:\n%s", b.String())
	}
}

// Every config key the parser knows is in the reference, in config.Keys()'s
// (sorted) order, and no other.
func TestDocsConfigKeys(t *testing.T) {
	got := firstColumn(section(t, "docs/reference.md", "config-keys"))
	if want := config.Keys(); !slices.Equal(got, want) {
		t.Errorf("docs/reference.md's config keys are %v;\nconfig.Keys() is %v", got, want)
	}
}

// jsonKeys is the keys of a JSON object, in the order they are written.
func jsonKeys(t *testing.T, obj []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %v %v: %s", tok, err, obj)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// The reference lists every field of the decision record, in the order
// AppendJSON writes them; the evidence object holds the evidence table's
// fields in its order.
func TestDocsRecordFields(t *testing.T) {
	r := record.Record{
		V: record.Version, Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		ClientIP: netip.MustParseAddr("192.0.2.99"), ClientPort: 40000, Helo: "mail.example",
		Rule: "reverse-dns-temperror", Action: policy.ActionTempfail, Mode: record.ModeEnforce,
		DNSFailures: []dnscache.Failure{{Name: "99.2.0.192.in-addr.arpa", Type: "PTR", Cause: dnscache.Causes()[0], Server: "127.0.0.1:53"}},
	}
	line := r.AppendJSON(nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("record does not decode: %v\n%s", err, line)
	}
	want := jsonKeys(t, line)
	if len(want) != len(m) {
		t.Fatalf("record has duplicate keys: %v", want)
	}
	if got := firstColumn(section(t, "docs/reference.md", "record-fields")); !slices.Equal(got, want) {
		t.Errorf("docs/reference.md's record fields are %v;\nAppendJSON writes %v", got, want)
	}
	var fields []string
	for _, f := range policy.Fields() {
		fields = append(fields, f.Name)
	}
	if got := jsonKeys(t, m["evidence"]); !slices.Equal(got, fields) {
		t.Errorf("the record's evidence object has %v;\npolicy.Fields() is %v", got, fields)
	}
}

// The rules table lists trusted, allowlist and then the built-in rules, in
// the order they run.
func TestDocsRulesTable(t *testing.T) {
	row := regexp.MustCompile("(?m)^\\| [0-9]+ \\| ([a-z-]+) \\|")
	var got []string
	for _, m := range row.FindAllStringSubmatch(doc(t, "docs/rules.md"), -1) {
		got = append(got, m[1])
	}
	want := []string{policy.RuleTrusted, "allowlist"}
	for _, r := range config.Default().Rules {
		want = append(want, r.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/rules.md's rules table lists %v;\nthe built-in rules are %v", got, want)
	}
}

// The reference explains every cause a failed lookup can have, and its
// sample decision line is one.
func TestDocsDecisionRecord(t *testing.T) {
	text := doc(t, "docs/reference.md")
	for _, c := range dnscache.Causes() {
		if !strings.Contains(text, "`"+string(c)+"`") {
			t.Errorf("docs/reference.md does not explain the DNS failure cause %s", c)
		}
	}
	sample := regexp.MustCompile("(?m)^\\{\"time\":\"…\",\"level\":\"INFO\",\"msg\":\"decision\".*$").FindString(text)
	r, err := record.Parse([]byte(strings.Replace(sample, "…", "2026-12-01T10:00:00Z", 1)))
	if err != nil || len(r.Missing) > 0 || !strings.HasSuffix(sample, `"dns_failures":[]}`) {
		t.Errorf("docs/reference.md's sample decision line: %v, missing %v:\n%s", err, r.Missing, sample)
	}
}

// The README links every document in docs/.
func TestReadmeLinksDocs(t *testing.T) {
	readme := doc(t, "README.md")
	files, err := os.ReadDir("../../docs")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".md") && !strings.Contains(readme, "](docs/"+f.Name()+")") {
			t.Errorf("README.md does not link docs/%s", f.Name())
		}
	}
}

// Every relative link of README.md and docs/*.md names a file of the
// repository, and an #anchor in a link to a file of docs/ names one of its
// headings (GitHub's slugs). Anchors into README.md are not checked: its
// sections are written by other changes too.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target, anchor, _ := strings.Cut(m[1], "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := f
			if target != "" {
				path = filepath.Join(filepath.Dir(f), target)
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: link %s: %v", f, m[1], err)
				continue
			}
			if anchor == "" || filepath.Base(path) == "README.md" || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !slices.Contains(headingSlugs(string(text)), anchor) {
				t.Errorf("%s: link %s: %s has no heading with that anchor (%v)", f, m[1], path, headingSlugs(string(text)))
			}
		}
	}
}

// headingSlugs are the anchors GitHub gives a markdown file's headings.
func headingSlugs(text string) []string {
	var slugs []string
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slugs = append(slugs, b.String())
	}
	return slugs
}

// docs/rules.md lists the engine's own decisions, as the engine reserves them.
func TestDocsEngineRules(t *testing.T) {
	got := firstColumn(section(t, "docs/rules.md", "engine-rules"))
	if want := policy.ReservedRuleNames(); !slices.Equal(got, want) {
		t.Errorf("docs/rules.md's engine rules are %v; the engine reserves %v", got, want)
	}
}
