package kapacitor

// The stack every gateway test runs against: `kapauth meta` with its users, a real
// kapacitord on loopback with auth off, and `kapauth serve` in front of it, each on an
// ephemeral port and ready once it has announced its address.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt"

	"kapauth.test/interop/harness"
)

// gatewaySecret is the gateway's [http] shared-secret, the key of bearer tokens.
const gatewaySecret = "interop-gateway-secret"

// The users of every stack: writer holds KapacitorAPI everywhere, reader only ReadData
// on db1 (so /ping and nothing else of the API), as in SPEC §3.
const (
	writerName     = "writer"
	writerPassword = "writer-pass-1"
	readerName     = "reader"
	readerPassword = "reader-pass-1"
)

type stack struct {
	meta       *harness.Process
	admin      harness.MetaAdmin
	kapacitord *harness.Process
	// gateway is kapauth serve's host:port.
	gateway string
}

// newStack starts meta, kapacitord and the gateway, and makes the users.
func newStack(t *testing.T) *stack {
	t.Helper()
	meta := harness.Start(t, harness.Meta(t).WithEnv("KAPAUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	admin := harness.Bootstrap(t, meta.Addr("meta"), adminName, adminPassword)
	admin.CreateUser(t, writerName, writerPassword, map[string][]string{"": {"KapacitorAPI"}})
	admin.CreateUser(t, readerName, readerPassword, map[string][]string{"db1": {"ReadData"}})
	kapacitord := startKapacitord(t, nil)
	gateway := harness.Start(t, harness.Gateway("http://"+kapacitord.Addr("http"), meta.Addr("meta")).
		WithEnv("KAPACITOR_HTTP_SHARED_SECRET="+gatewaySecret).
		WithEnv("KAPACITOR_AUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	return &stack{meta: meta, admin: admin, kapacitord: kapacitord, gateway: gateway.Addr("gateway")}
}

// url is the gateway's URL with credentials in it, the way the seed documents run the CLI.
func (s *stack) url(user, password string) string {
	return fmt.Sprintf("http://%s:%s@%s", user, password, s.gateway)
}

// kapacitordAuth turns Kapacitor's own auth on, against the meta API at metaAddr.
type kapacitordAuth struct {
	metaAddr string
}

// startKapacitord runs the kapacitord that `make interop` built, with a config of its own
// under a temporary directory: HTTP on an ephemeral loopback port, no InfluxDB, no usage
// reports; auth off unless authOn says how to turn it on. The secrets are in that file,
// never in argv.
func startKapacitord(t *testing.T, authOn *kapacitordAuth) *harness.Process {
	t.Helper()
	binary := os.Getenv("KAPACITORD_BIN")
	if binary == "" {
		t.Fatal("KAPACITORD_BIN is not set; run the suite with `make interop`, which builds kapacitord and sets it")
	}
	dir := t.TempDir()
	httpAuth, authSection := "", ""
	if authOn != nil {
		httpAuth = fmt.Sprintf("  auth-enabled = true\n  shared-secret = %q\n", gatewaySecret)
		authSection = fmt.Sprintf(`
[auth]
  enabled = true
  cache-expiration = "10m"
  bcrypt-cost = 4
  meta-addr = %q
  meta-internal-shared-secret = %q
`, authOn.metaAddr, internalSecret)
	}
	config := fmt.Sprintf(`hostname = "127.0.0.1"
data_dir = %[1]q
skip-config-overrides = true

[http]
  bind-address = "127.0.0.1:0"
  log-enabled = true
%[5]s

[logging]
  file = "STDERR"
  level = "DEBUG"

[replay]
  dir = %[2]q

[task]
  dir = %[3]q

[storage]
  boltdb = %[4]q

[load]
  enabled = false

[reporting]
  enabled = false

[[influxdb]]
  enabled = false
  name = "none"
  urls = ["http://127.0.0.1:1"]
%[6]s`, dir, filepath.Join(dir, "replay"), filepath.Join(dir, "tasks"), filepath.Join(dir, "kapacitor.db"), httpAuth, authSection)
	path := filepath.Join(dir, "kapacitor.conf")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	cmd := exec.Command(binary, "-config", path)
	cmd.Env = harness.CleanEnv()
	return harness.StartCommand(t, "kapacitord", cmd, []string{"http"}, kapacitordListening)
}

// kapacitordListening reads kapacitord's `msg="listening on" service=http addr=A`.
func kapacitordListening(line string) (string, string, bool) {
	if !strings.Contains(line, `msg="listening on"`) {
		return "", "", false
	}
	return harness.Field(line, "service"), harness.Field(line, "addr"), true
}

// bearer is a token the gateway accepts for user: HS256 over the shared secret, with an
// expiry, as Kapacitor's docs make them.
func bearer(t *testing.T, secret, user string) string {
	t.Helper()
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"username": user,
		"exp":      time.Now().Add(time.Minute).Unix(),
	})
	signed, err := token.SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("signing a token: %v", err)
	}
	return signed
}
