package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// service is one service of the compose file, interpolated.
type service struct {
	name      string
	image     string // e.g. "redis:7"; empty when built
	build     bool   // built from ../Dockerfile
	command   []string
	env       map[string]string
	ports     []string          // container ports, from expose and ports
	published map[string]string // container port: the host's "address:port" or "port"
	volumes   []string          // container paths
	ip        string            // ipv4_address
	dependsOn map[string]string // service: condition
	health    []string          // healthcheck test
	// healthWait is how long compose waits for it to be healthy:
	// interval × retries (defaults 30s × 3).
	healthWait time.Duration
	// stopGrace is how long `down` waits after SIGTERM. default: 10s
	stopGrace time.Duration
}

// serviceKeys are the keys of a service the check knows; any other key is
// an error, so that the check learns it before the file uses it.
var serviceKeys = []string{"image", "build", "command", "environment", "ports", "expose", "volumes",
	"networks", "depends_on", "healthcheck", "stop_grace_period", "restart"}

func loadCompose(t *testing.T, path string, vars map[string]string) []*service {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := readYAML(string(src))
	if err != nil {
		t.Fatalf("cannot read %s: %s", path, err)
	}
	top, ok := doc.(*yamlMap)
	if !ok {
		t.Fatalf("%s is not a map", path)
	}
	for _, k := range top.keys {
		if !slices.Contains([]string{"name", "services", "networks", "volumes"}, k) {
			t.Fatalf("%s: the check does not know the top-level key %q", path, k)
		}
	}
	svcs, ok := top.get("services").(*yamlMap)
	if !ok {
		t.Fatalf("%s has no services", path)
	}
	var out []*service
	for _, name := range svcs.keys {
		m, ok := svcs.get(name).(*yamlMap)
		if !ok {
			t.Fatalf("%s: service %s is not a map", path, name)
		}
		s, err := newService(name, m, vars)
		if err != nil {
			t.Fatalf("%s: service %s: %s", path, name, err)
		}
		out = append(out, s)
	}
	return out
}

func newService(name string, m *yamlMap, vars map[string]string) (*service, error) {
	s := &service{name: name, env: map[string]string{}, published: map[string]string{}, dependsOn: map[string]string{},
		healthWait: 90 * time.Second, stopGrace: 10 * time.Second}
	for _, k := range m.keys {
		if !slices.Contains(serviceKeys, k) {
			return nil, fmt.Errorf("the check does not know key %q", k)
		}
		v, err := interpolateAll(m.get(k), vars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		m.values[k] = v
	}
	var err error
	str := func(k string) string {
		v, ok := m.get(k).(string)
		if !ok && m.get(k) != nil && err == nil {
			err = fmt.Errorf("%s is not a string", k)
		}
		return v
	}
	strs := func(v any, what string) []string {
		l, ok := v.([]any)
		if !ok && v != nil && err == nil {
			err = fmt.Errorf("%s is not a list", what)
		}
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := e.(string)
			if !ok && err == nil {
				err = fmt.Errorf("%s holds a non-string %v", what, e)
			}
			out = append(out, s)
		}
		return out
	}
	s.image = str("image")
	if b := str("build"); b != "" {
		if b != "." {
			return nil, fmt.Errorf("build %q: the check builds ../Dockerfile only", b)
		}
		s.build = true
	}
	if (s.image == "") == !s.build {
		return nil, errors.New("want exactly one of image and build")
	}
	s.command = strs(m.get("command"), "command")
	switch env := m.get("environment").(type) {
	case *yamlMap:
		for _, k := range env.keys {
			v, _ := env.get(k).(string)
			s.env[k] = v
		}
	case []any:
		for _, kv := range strs(env, "environment") {
			k, v, _ := strings.Cut(kv, "=")
			s.env[k] = v
		}
	}
	s.ports = strs(m.get("expose"), "expose")
	for _, p := range strs(m.get("ports"), "ports") {
		// [address:]host:container
		i := strings.LastIndexByte(p, ':')
		if i < 0 {
			return nil, fmt.Errorf("port %q publishes no container port on a chosen host port", p)
		}
		s.ports = append(s.ports, p[i+1:])
		s.published[p[i+1:]] = p[:i]
	}
	for _, v := range strs(m.get("volumes"), "volumes") {
		_, path, ok := strings.Cut(v, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("volume %q is not name:/path", v)
		}
		s.volumes = append(s.volumes, path)
	}
	if nets, ok := m.get("networks").(*yamlMap); ok {
		for _, n := range nets.keys {
			if nm, ok := nets.get(n).(*yamlMap); ok {
				s.ip, _ = nm.get("ipv4_address").(string)
			}
		}
	}
	switch deps := m.get("depends_on").(type) {
	case []any:
		for _, d := range strs(deps, "depends_on") {
			s.dependsOn[d] = "service_started"
		}
	case *yamlMap:
		for _, d := range deps.keys {
			cond := "service_started"
			if dm, ok := deps.get(d).(*yamlMap); ok && dm.get("condition") != nil {
				cond, _ = dm.get("condition").(string)
			}
			s.dependsOn[d] = cond
		}
	}
	if hc, ok := m.get("healthcheck").(*yamlMap); ok {
		s.health = strs(hc.get("test"), "healthcheck test")
		switch {
		case len(s.health) < 2 && !slices.Equal(s.health, []string{"NONE"}),
			!slices.Contains([]string{"CMD", "CMD-SHELL", "NONE"}, s.health[0]):
			return nil, fmt.Errorf("healthcheck test %q: want [CMD, ...], [CMD-SHELL, ...] or [NONE]", s.health)
		case len(s.health) > 1 && s.health[1] == "wget" && !slices.ContainsFunc(s.health, func(a string) bool { return strings.HasPrefix(a, "http://") }):
			return nil, fmt.Errorf("healthcheck test %q: the check runs wget on an http:// URL only", s.health)
		}
		interval, retries := 30*time.Second, 3
		if v, ok := hc.get("interval").(string); ok {
			if interval, err = time.ParseDuration(v); err != nil {
				return nil, err
			}
		}
		if v, ok := hc.get("retries").(string); ok {
			if retries, err = strconv.Atoi(v); err != nil {
				return nil, err
			}
		}
		s.healthWait = interval * time.Duration(retries)
	}
	if v := str("stop_grace_period"); v != "" {
		if s.stopGrace, err = time.ParseDuration(v); err != nil {
			return nil, err
		}
	}
	return s, err
}

var varRE = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|[A-Za-z_][A-Za-z0-9_]*)`)

// interpolate expands compose's $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$ from vars alone.
func interpolate(s string, vars map[string]string) (string, error) {
	var err error
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		g := varRE.FindStringSubmatch(m)
		switch {
		case g[1] == "$":
			return "$"
		case g[2] == "":
			return vars[g[1]]
		}
		v, set := vars[g[2]]
		unset := !set || g[3] != "" && g[3][0] == ':' && v == ""
		switch {
		case !unset || g[3] == "":
			return v
		case strings.HasSuffix(g[3], "-"):
			return g[4]
		}
		if err == nil {
			err = fmt.Errorf("variable %s is not set: %s", g[2], g[4])
		}
		return ""
	})
	if err == nil && strings.Contains(varRE.ReplaceAllString(s, ""), "$") {
		err = fmt.Errorf("cannot interpolate %q", s)
	}
	return out, err
}

func interpolateAll(v any, vars map[string]string) (any, error) {
	switch v := v.(type) {
	case string:
		return interpolate(v, vars)
	case []any:
		for i := range v {
			var err error
			if v[i], err = interpolateAll(v[i], vars); err != nil {
				return nil, err
			}
		}
	case *yamlMap:
		for _, k := range v.keys {
			var err error
			if v.values[k], err = interpolateAll(v.values[k], vars); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// image is what the Dockerfile's final stage gives a built service.
type image struct {
	args       map[string]string // ARG defaults
	buildCmd   string            // the RUN line that runs go build
	out        string            // where it writes the binary, copied into the final stage
	binName    string            // the binary's name on the final stage's PATH
	env        [][2]string       // ENV, in order
	volumes    []string          // VOLUME
	entrypoint []string
	cmd        []string
}

func loadDockerfile(t *testing.T, path string) *image {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img := &image{args: map[string]string{}}
	execForm := func(rest string) []string {
		var l []string
		if err := json.Unmarshal([]byte(rest), &l); err != nil {
			t.Fatalf("%s: the check reads the exec form only: %q", path, rest)
		}
		return l
	}
	joined := strings.ReplaceAll(string(src), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			img.env, img.volumes, img.entrypoint, img.cmd = nil, nil, nil, nil
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			img.args[k] = v
		case "RUN":
			if strings.Contains(rest, "go build") {
				if img.buildCmd != "" {
					t.Fatalf("%s: two RUN lines run go build", path)
				}
				img.buildCmd = rest
			}
		case "COPY":
			f := strings.Fields(rest)
			if len(f) == 3 && strings.HasPrefix(f[0], "--from=") {
				img.out, img.binName = f[1], filepath.Base(f[2])
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("%s: the check reads ENV key=value only: %q", path, line)
				}
				img.env = append(img.env, [2]string{k, v})
			}
		case "VOLUME":
			img.volumes = append(img.volumes, strings.Fields(rest)...)
		case "ENTRYPOINT":
			img.entrypoint = execForm(rest)
		case "CMD":
			img.cmd = execForm(rest)
		}
	}
	if img.buildCmd == "" || img.out == "" || !strings.Contains(img.buildCmd, img.out) || len(img.entrypoint) == 0 {
		t.Fatalf("%s: the check wants a RUN of go build -o X, a COPY --from of X and an ENTRYPOINT", path)
	}
	return img
}

// build runs the Dockerfile's go build command in the repository (the
// build stage's COPY . .), writing the binary into dir, and returns its
// path.
func (img *image) build(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, img.binName)
	line := strings.Replace(os.Expand(img.buildCmd, func(k string) string { return img.args[k] }), img.out, bin, 1)
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build with the Dockerfile's %q: %s\n%s", line, err, out)
	}
	return bin
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"A": "a", "E": ""}
	f := func(in, want string) {
		t.Helper()
		got, err := interpolate(in, vars)
		if err != nil || got != want {
			t.Fatalf("unexpected interpolation of %q; got %q, %v; want %q", in, got, err, want)
		}
	}
	f("x", "x")
	f("$A ${A}/${A:?e}", "a a/a")
	f("${B:-d} ${E:-d} ${E-d} ${B-d}", "d d  d")
	f("$$A", "$A")
	bad := func(in string) {
		t.Helper()
		if got, err := interpolate(in, vars); err == nil {
			t.Fatalf("unexpected success for %q: %q", in, got)
		}
	}
	bad("${B:?set it}")
	bad("${E:?set it}")
	bad("${B?set it}")
	bad("$ x")
	bad("${A")
}
