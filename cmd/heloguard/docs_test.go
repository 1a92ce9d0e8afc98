package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heloguard/heloguard/config"
	"github.com/heloguard/heloguard/dnscache"
	"github.com/heloguard/heloguard/policy"
	"github.com/heloguard/heloguard/policy/record"
)

// The README's tables of evidence fields, placeholders and built-in rules are
// derived from the code's own tables; these tests fail when they drift, and
// print the table to paste.

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is the text between <!-- name: ... --> and <!-- /name -->.
func section(t *testing.T, doc, name string) string {
	t.Helper()
	start := strings.Index(doc, "<!-- "+name+":")
	end := strings.Index(doc, "<!-- /"+name+" -->")
	if start < 0 || end < start {
		t.Fatalf("README has no %s section", name)
	}
	body := doc[start:end]
	return body[strings.Index(body, "-->\n")+4:]
}

func TestReadmeEvidenceTable(t *testing.T) {
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
	if got := section(t, readme(t), "evidence-table"); got != b.String() {
		t.Errorf("README's evidence table differs from policy/fields.go; it should read:\n%s", b.String())
	}
}

func TestReadmePlaceholderTable(t *testing.T) {
	var b strings.Builder
	b.WriteString("| placeholder | meaning |\n|---|---|\n")
	for _, p := range policy.Placeholders() {
		b.WriteString("| `" + p.Name + "` | " + p.Meaning + " |\n")
	}
	if got := section(t, readme(t), "placeholder-table"); got != b.String() {
		t.Errorf("README's placeholder table differs from policy/placeholders.go; it should read:\n%s", b.String())
	}
}

// The rules table lists trusted, allowlist and then the built-in rules, in
// the order they run.
func TestReadmeRulesTable(t *testing.T) {
	row := regexp.MustCompile("(?m)^\\| [0-9]+ \\| ([a-z-]+) \\|")
	var got []string
	for _, m := range row.FindAllStringSubmatch(readme(t), -1) {
		got = append(got, m[1])
	}
	want := []string{policy.RuleTrusted, "allowlist"}
	for _, r := range config.Default().Rules {
		want = append(want, r.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("README's rules table lists %v;\nthe built-in rules are %v", got, want)
	}
}

// The README explains every cause a failed lookup can have, and its sample
// decision line is one.
func TestReadmeDecisionRecord(t *testing.T) {
	doc := readme(t)
	for _, c := range dnscache.Causes() {
		if !strings.Contains(doc, "`"+string(c)+"`") {
			t.Errorf("README does not explain the DNS failure cause %s", c)
		}
	}
	sample := regexp.MustCompile("(?m)^\\{\"time\":\"…\",\"level\":\"INFO\",\"msg\":\"decision\".*$").FindString(doc)
	r, err := record.Parse([]byte(strings.Replace(sample, "…", "2026-12-01T10:00:00Z", 1)))
	if err != nil || len(r.Missing) > 0 || !strings.HasSuffix(sample, `"dns_failures":[]}`) {
		t.Errorf("README's sample decision line: %v, missing %v:\n%s", err, r.Missing, sample)
	}
}
