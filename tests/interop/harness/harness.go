// Package harness starts the release kapauth binary (and peers such as kapacitord) for the
// interop suites, the way the Rust black-box tests do: on 127.0.0.1 port 0, ready once it
// logs `msg=listening service=... addr=...` (SPEC §9), killed when the test ends. Secrets
// go to the child through its environment, never its argv. Every wait is bounded; nothing
// sleeps. It also makes meta users and certificates for the suites.
package harness

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ReadyTimeout bounds how long a started binary may take to log every awaited listener.
const ReadyTimeout = 15 * time.Second

// BinaryEnv names the environment variable that holds the path of the kapauth binary
// under test; `make interop` sets it to the release build.
const BinaryEnv = "KAPAUTH_BIN"

// Launch describes one kapauth process: its program (serve or meta), --set flags,
// environment (for secrets) and the services whose listening lines mean it is ready.
type Launch struct {
	Program  string
	Sets     []string
	Env      []string
	Services []string
}

// Meta is `kapauth meta` on an ephemeral loopback port over a fresh directory, with
// bcrypt cost 4 so the suite stays fast.
func Meta(t testing.TB) Launch {
	return Launch{
		Program: "meta",
		Sets: []string{
			"meta.bind-address=127.0.0.1:0",
			"meta.dir=" + t.TempDir(),
			"meta.bcrypt-cost=4",
		},
		Services: []string{"meta"},
	}
}

// Gateway is `kapauth serve` on an ephemeral loopback port in front of upstream, asking
// the meta API at metaAddr (host:port).
func Gateway(upstream, metaAddr string) Launch {
	return Launch{
		Program: "serve",
		Sets: []string{
			"http.bind-address=127.0.0.1:0",
			"gateway.upstream=" + upstream,
			"auth.meta-addr=" + metaAddr,
			"auth.bcrypt-cost=4",
		},
		Services: []string{"gateway"},
	}
}

// Set adds `--set KEY=VALUE`; a later one for the same key wins.
func (l Launch) Set(keyValue string) Launch {
	l.Sets = append(append([]string(nil), l.Sets...), keyValue)
	return l
}

// WithEnv adds NAME=VALUE to the child's environment (the way secrets are passed).
func (l Launch) WithEnv(nameValue string) Launch {
	l.Env = append(append([]string(nil), l.Env...), nameValue)
	return l
}

// Process is a running program under test: kapauth, or a peer such as kapacitord.
type Process struct {
	cmd   *exec.Cmd
	addrs map[string]string

	mu    sync.Mutex
	lines []string
}

// Start runs the launch and waits until every awaited service has logged its address; it
// fails the test after ReadyTimeout or if the process exits first. The process is killed
// when the test ends.
func Start(t testing.TB, l Launch) *Process {
	t.Helper()
	binary := os.Getenv(BinaryEnv)
	if binary == "" {
		t.Fatalf("%s is not set; run the suite with `make interop`, which builds the release kapauth and sets it", BinaryEnv)
	}
	args := []string{l.Program}
	for _, set := range l.Sets {
		args = append(args, "--set", set)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(CleanEnv(), l.Env...)
	return StartCommand(t, "kapauth "+l.Program, cmd, l.Services, kapauthListening)
}

// Listening reads one stderr line: the service and address it announces, if it is a
// listening line.
type Listening func(line string) (service, addr string, ok bool)

// kapauthListening reads kapauth's `msg=listening service=S addr=A` (SPEC §9).
func kapauthListening(line string) (string, string, bool) {
	if Field(line, "msg") != "listening" {
		return "", "", false
	}
	return Field(line, "service"), Field(line, "addr"), true
}

// StartCommand starts cmd (its stderr captured line by line) and waits until listening
// has reported every one of services; it fails the test after ReadyTimeout or if the
// process exits first. The process is killed when the test ends, and its stderr shown if
// the test failed.
func StartCommand(t testing.TB, name string, cmd *exec.Cmd, services []string, listening Listening) *Process {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("stderr pipe for %s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s (%s): %v", name, cmd.Path, err)
	}
	p := &Process{cmd: cmd, addrs: map[string]string{}}
	announced := make(chan [2]string, 8)
	closed := make(chan struct{})
	go p.read(stderr, listening, announced, closed)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-closed
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, strings.Join(p.Lines(), "\n"))
		}
	})
	deadline := time.NewTimer(ReadyTimeout)
	defer deadline.Stop()
	for !p.ready(services) {
		select {
		case service := <-announced:
			p.addrs[service[0]] = service[1]
		case <-closed:
			t.Fatalf("%s exited before it was ready; stderr:\n%s", name, strings.Join(p.Lines(), "\n"))
		case <-deadline.C:
			t.Fatalf("%s did not announce %v within %v; stderr:\n%s", name, services, ReadyTimeout, strings.Join(p.Lines(), "\n"))
		}
	}
	return p
}

// Addr is the host:port that service logged it listens on.
func (p *Process) Addr(service string) string {
	return p.addrs[service]
}

// Lines is every stderr line so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Kill stops the process at once (SIGKILL).
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
}

func (p *Process) ready(services []string) bool {
	for _, service := range services {
		if _, ok := p.addrs[service]; !ok {
			return false
		}
	}
	return true
}

func (p *Process) read(stderr io.Reader, listening Listening, announced chan<- [2]string, closed chan<- struct{}) {
	defer close(closed)
	scanner := bufio.NewScanner(stderr)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		if service, addr, ok := listening(line); ok {
			select {
			case announced <- [2]string{service, addr}:
			default:
			}
		}
	}
	// A line too long for the scanner must not stall the child on a full pipe.
	_, _ = io.Copy(io.Discard, stderr)
}

// Field reads an unquoted logfmt value: `key=value` up to the next space.
func Field(line, key string) string {
	for _, pair := range strings.Fields(line) {
		if value, ok := strings.CutPrefix(pair, key+"="); ok {
			return value
		}
	}
	return ""
}

// CleanEnv is this process's environment without KAPACITOR_* and KAPAUTH_* variables, so
// only what a test says configures a child (kapauth and kapacitord both read them).
func CleanEnv() []string {
	var env []string
	for _, variable := range os.Environ() {
		upper := strings.ToUpper(variable)
		if strings.HasPrefix(upper, "KAPACITOR_") || strings.HasPrefix(upper, "KAPAUTH_") {
			continue
		}
		env = append(env, variable)
	}
	return env
}

// MetaAdmin speaks the meta API's user and role actions with Basic credentials, to set up
// the users a test needs. It is plain net/http so setup never depends on a peer under test.
type MetaAdmin struct {
	// Base is the meta API's URL, e.g. http://127.0.0.1:8091.
	Base     string
	User     string
	Password string
	// HTTP sends the requests; nil means Client.
	HTTP *http.Client
}

// Bootstrap creates the first user on the empty meta store at metaAddr over plain HTTP
// (that user then holds every permission) and returns an admin that speaks as it.
func Bootstrap(t testing.TB, metaAddr, user, password string) MetaAdmin {
	t.Helper()
	return MetaAdmin{Base: "http://" + metaAddr}.Bootstrap(t, user, password)
}

// Bootstrap creates the first user through a, which carries no credentials yet, and
// returns a copy of a that speaks as that user.
func (a MetaAdmin) Bootstrap(t testing.TB, user, password string) MetaAdmin {
	t.Helper()
	admin := a
	admin.Post(t, "/user", map[string]any{"action": "create", "user": map[string]any{"name": user, "password": password}})
	admin.User, admin.Password = user, password
	return admin
}

// CreateUser creates name with password and grants it permissions (scope → tokens).
func (a MetaAdmin) CreateUser(t testing.TB, name, password string, permissions map[string][]string) {
	t.Helper()
	a.Post(t, "/user", map[string]any{"action": "create", "user": map[string]any{"name": name, "password": password}})
	if len(permissions) > 0 {
		a.Post(t, "/user", map[string]any{"action": "add-permissions", "user": map[string]any{"name": name, "permissions": permissions}})
	}
}

// Post sends one action and fails the test unless the answer is 200.
func (a MetaAdmin) Post(t testing.TB, path string, action any) {
	t.Helper()
	body, err := json.Marshal(action)
	if err != nil {
		t.Fatalf("encoding %v: %v", action, err)
	}
	request, err := http.NewRequest(http.MethodPost, a.Base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("request to %s%s: %v", a.Base, path, err)
	}
	if a.User != "" {
		request.SetBasicAuth(a.User, a.Password)
	}
	client := a.HTTP
	if client == nil {
		client = Client
	}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("POST %s%s: %v", a.Base, path, err)
	}
	defer response.Body.Close()
	answer, _ := io.ReadAll(response.Body)
	if response.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: %d %s", path, body, response.StatusCode, answer)
	}
}

// Client is an HTTP client whose every request is bounded in time.
var Client = &http.Client{Timeout: 20 * time.Second}

// AssertError fails the test, going on, unless err's text is want.
func AssertError(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %q", want)
	} else if err.Error() != want {
		t.Errorf("error = %q, want %q", err.Error(), want)
	}
}

// SelfSigned writes a fresh self-signed certificate for 127.0.0.1 and its key (PEM) into a
// temporary directory, and returns both paths and a pool that trusts the certificate.
func SelfSigned(t testing.TB) (certificate, key string, roots *x509.CertPool) {
	t.Helper()
	private, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a key: %v", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "kapauth interop"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &private.PublicKey, private)
	if err != nil {
		t.Fatalf("creating a certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		t.Fatalf("encoding the key: %v", err)
	}
	dir := t.TempDir()
	certificate, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certificate, "CERTIFICATE", der)
	writePEM(t, key, "PRIVATE KEY", keyDER)
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing the certificate: %v", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(parsed)
	return certificate, key, roots
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}
