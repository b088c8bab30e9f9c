package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLinksImport runs clickgate links import on the real binary: 10,000
// links of a JSON lines file (over the admin listener's 1 MiB, so sent in
// parts) created and served, and files with bad lines, a taken code or a
// code given twice, in a later part, JSON lines or CSV, refused with
// their lines named and nothing created.
func TestLinksImport(t *testing.T) {
	p := startEdge(t)
	dir := t.TempDir()
	cli := func(args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"links", "import"}, args...)...)
		cmd.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+p.admin, "CLICKGATE_ADMIN_TOKEN="+p.token)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	line := func(code string) string {
		return fmt.Sprintf(`{"campaign":"spring","creator":"alice","code":%q,"destinations":{"default":"https://app.example.com/join"}}`+"\n", code)
	}
	notCreated := func(codes ...string) {
		t.Helper()
		for _, code := range codes {
			if status, _ := p.call(t, "GET", "/v1/links/"+code, p.token, nil); status != 404 {
				t.Fatalf("unexpected status of link %q of a refused import; got %d; want 404", code, status)
			}
		}
	}

	const n = 10_000
	var b strings.Builder
	for i := range n {
		b.WriteString(line(fmt.Sprintf("bulk%06d", i)))
	}
	good := write("links.jsonl", b.String())
	start := time.Now()
	stdout, stderr, err := cli(good)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("links import failed: %s\n%s", err, stderr)
	}
	var res struct {
		Created int
		Links   []struct {
			Line      int
			Code, URL string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Created != n || len(res.Links) != n {
		t.Fatalf("unexpected links import output (%v): created %d, %d links", err, res.Created, len(res.Links))
	}
	for _, i := range []int{0, 7000, n - 1} {
		l := res.Links[i]
		if l.Line != i+1 || l.Code != fmt.Sprintf("bulk%06d", i) || l.URL != "https://"+edgeHost+"/"+l.Code {
			t.Fatalf("unexpected link %d of the output: %+v", i, l)
		}
		if got := statusCodes(mustExchange(t, "127.0.0.3", p.public, edgeReq("GET /"+l.Code+" HTTP/1.1")), false); len(got) != 1 || got[0] != 302 {
			t.Fatalf("unexpected answer to imported link %q; got %v; want [302]", l.Code, got)
		}
	}
	t.Logf("%d links imported in %s", n, took)

	// A bad line, a taken code, a code given in both parts, each in the
	// second part: nothing created, the lines named.
	for _, c := range []struct {
		name, prefix string
		at           int    // the bad line, from 0
		bad          string // that line
		want         string // in the error, after the file's name
	}{
		{"bad", "more", 9000, `{"campaign":"spring","creator":"nobody","destinations":{"default":"https://app.example.com/join"}}` + "\n", `:9001: creator "nobody" does not exist`},
		{"taken", "late", 9000, line("bulk000001"), `:9001: code "bulk000001" is taken`},
		{"twice", "twice", 9500, line("twice000002"), `:9501: code "twice000002" is given on line 3 too`},
	} {
		b.Reset()
		for i := range n {
			if i == c.at {
				b.WriteString(c.bad)
				continue
			}
			b.WriteString(line(fmt.Sprintf("%s%06d", c.prefix, i)))
		}
		file := write(c.name+".jsonl", b.String())
		if _, stderr, err := cli(file); err == nil || !strings.Contains(stderr, file+c.want) || !strings.Contains(stderr, "no link created") {
			t.Fatalf("unexpected result of the %s file; got %v\n%s", c.name, err, stderr)
		}
		notCreated(c.prefix+"000000", fmt.Sprintf("%s%06d", c.prefix, c.at-1), fmt.Sprintf("%s%06d", c.prefix, n-1))
	}

	// CSV: line numbers are the file's, a quoted line break included.
	csv := "campaign,creator,code,default,title\n" +
		"spring,alice,csv-one,https://app.example.com/join,\"Join\nus\"\n" +
		"spring,alice,bulk000001,https://app.example.com/join,\n" +
		"spring,alice,csv-two,ftp://app.example.com/join,\n"
	badCSV := write("bad.csv", csv)
	if _, stderr, err := cli(badCSV); err == nil || !strings.Contains(stderr, badCSV+":5: destinations.default") {
		t.Fatalf("unexpected result of a CSV file with a bad line; got %v\n%s", err, stderr)
	}
	// The same without the bad line: a code taken (line 4), 409.
	badCSV = write("taken.csv", strings.TrimSuffix(csv, "spring,alice,csv-two,ftp://app.example.com/join,\n"))
	if _, stderr, err := cli(badCSV); err == nil || !strings.Contains(stderr, badCSV+`:4: code "bulk000001" is taken`) {
		t.Fatalf("unexpected result of a CSV file with a taken code; got %v\n%s", err, stderr)
	}
	notCreated("csv-one", "csv-two")
	goodCSV := write("good.csv", "campaign,creator,code,default,title\nspring,alice,csv-one,https://app.example.com/join,\"Join\nus\"\n")
	if stdout, stderr, err := cli(goodCSV); err != nil || !strings.Contains(stdout, `"line": 2`) {
		t.Fatalf("unexpected result of a good CSV file; got %v\n%s%s", err, stdout, stderr)
	}
	if l := p.mustCall(t, "GET", "/v1/links/csv-one", nil, 200); l["preview"].(map[string]any)["title"] != "Join\nus" {
		t.Fatalf("unexpected link of the CSV file; got %v", l)
	}
}
