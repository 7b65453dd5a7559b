package kapacitor

// The live differential oracle: one corpus of requests (every credential form of SPEC §1,
// users holding each permission set, every method, the endpoints of Kapacitor's
// services/httpd, preview paths, /write with and without database grants, JWTs) replayed
// against kapauth in front of a kapacitord with auth off, and against a second kapacitord
// whose own auth asks the same `kapauth meta`, so Kapacitor's own code makes every
// decision from the same users. Status and error text are compared pair by pair; every
// difference must be one README documents ("Where kapauth differs from Kapacitor"), or
// the test fails naming it.

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt"

	"kapauth.test/interop/harness"
)

// credential is one way a request presents (or fails to present) who it is.
type credential struct {
	name string
	// user is the meta user the credential names, if any.
	user string
	// apply sets the request's header and returns the query to add (without `?`).
	apply func(*http.Request) string
	// slow marks an unknown user: Kapacitor's meta client retries a 404 until its 10 s
	// timeout, so these are asked only of a few endpoints.
	slow bool
}

// endpoint is one request target; body is sent with POST, PATCH and PUT.
type endpoint struct {
	target string
	body   string
}

// answer is what one side said: status and, for an error, its text.
type answer struct {
	status int
	text   string
}

// oracleUsers are the meta users of the corpus, each with a different permission set
// (SPEC §3). roleuser holds nothing itself; its role holds KapacitorAPI.
var oracleUsers = []struct {
	name        string
	permissions map[string][]string
}{
	{"writer", map[string][]string{"": {"KapacitorAPI"}}},
	{"confuser", map[string][]string{"": {"KapacitorConfigAPI"}}},
	{"reader", map[string][]string{"db1": {"ReadData"}}},
	{"dbwriter", map[string][]string{"db1": {"WriteData"}}},
	{"allwriter", map[string][]string{"": {"WriteData"}}},
	{"slashwriter", map[string][]string{"my/db": {"WriteData"}}},
	{"mixed", map[string][]string{"": {"KapacitorAPI"}, "db1": {"WriteData"}}},
	{"bare", nil},
	{"roleuser", nil},
}

func oraclePassword(user string) string { return user + "-pass-1" }

func TestOracleKapauthDecidesAsKapacitorDoes(t *testing.T) {
	meta := harness.Start(t, harness.Meta(t).WithEnv("KAPAUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	metaAddr := meta.Addr("meta")
	admin := harness.Bootstrap(t, metaAddr, adminName, adminPassword)
	for _, user := range oracleUsers {
		admin.CreateUser(t, user.name, oraclePassword(user.name), user.permissions)
	}
	admin.Post(t, "/role", map[string]any{"action": "create", "role": map[string]any{"name": "kapops"}})
	admin.Post(t, "/role", map[string]any{"action": "add-permissions", "role": map[string]any{"name": "kapops", "permissions": map[string][]string{"": {"KapacitorAPI"}}}})
	admin.Post(t, "/role", map[string]any{"action": "add-users", "role": map[string]any{"name": "kapops", "users": []string{"roleuser"}}})

	upstream := startKapacitord(t, nil)
	// The corpus replays each wrong password hundreds of times from one address: kapauth's
	// failed-login throttling (a documented difference, tested on its own in make test)
	// would answer 429 to most of them, so it is off here and the oracle compares decisions.
	gateway := harness.Start(t, harness.Gateway("http://"+upstream.Addr("http"), metaAddr).
		Set("auth.login-throttling=false").
		WithEnv("KAPACITOR_HTTP_SHARED_SECRET="+gatewaySecret).
		WithEnv("KAPACITOR_AUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	kapacitor := startKapacitord(t, &kapacitordAuth{metaAddr: metaAddr})

	type pair struct {
		credential credential
		method     string
		endpoint   endpoint
		kapauth    answer
		kapacitor  answer
	}
	var pairs []*pair
	for _, credential := range oracleCredentials(t) {
		endpoints := oracleEndpoints
		methods := oracleMethods
		if credential.slow {
			endpoints, methods = oracleEndpoints[:3], []string{"GET"}
		}
		for _, endpoint := range endpoints {
			for _, method := range methods {
				if method == "GET" && strings.HasPrefix(endpoint.target, "/kapacitor/v1preview/logs") {
					// An allowed GET streams until the client leaves; its other methods
					// still exercise the preview rules.
					continue
				}
				pairs = append(pairs, &pair{credential: credential, method: method, endpoint: endpoint})
			}
		}
	}

	// Both sides get each request; pairs run eight at a time (the slow ones wait 10 s on
	// Kapacitor's meta retries). The corpus changes no state either side would answer
	// differently for: writes go nowhere, bodies are refused or empty.
	work := make(chan *pair)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				p.kapauth = ask(t, gateway.Addr("gateway"), p.credential, p.method, p.endpoint)
				p.kapacitor = ask(t, kapacitor.Addr("http"), p.credential, p.method, p.endpoint)
			}
		}()
	}
	for _, p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()

	kinds := map[string]int{}
	undocumented := 0
	var details strings.Builder
	for _, p := range pairs {
		if p.kapauth == p.kapacitor {
			continue
		}
		kind := documentedDifference(p.credential, p.method, p.endpoint, p.kapauth, p.kapacitor)
		fmt.Fprintf(&details, "%s | %s %s | %s | kapauth %d %q | Kapacitor %d %q\n",
			cmp.Or(kind, "undocumented"), p.method, p.endpoint.target, p.credential.name, p.kapauth.status, p.kapauth.text, p.kapacitor.status, p.kapacitor.text)
		if kind == "" {
			undocumented++
			if undocumented <= 40 {
				t.Errorf("undocumented difference: %s %s with %s: kapauth %d %q, Kapacitor %d %q",
					p.method, p.endpoint.target, p.credential.name, p.kapauth.status, p.kapauth.text, p.kapacitor.status, p.kapacitor.text)
			}
			kind = "undocumented"
		}
		kinds[kind]++
	}
	report := oracleReport(len(pairs), kinds)
	t.Log(report)
	if path := os.Getenv("INTEROP_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report+"\nevery differing pair:\n"+details.String()), 0o644); err != nil {
			t.Errorf("writing the oracle report to %s: %v", path, err)
		}
	}
}

var oracleMethods = []string{"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "TRACE", "get"}

const linePoint = "cpu,host=a usage_idle=5 1\n"

// oracleEndpoints covers the routes of Kapacitor's services/httpd and the services that
// register under it, the preview prefix, /write in both places with and without database
// grants, and paths kapauth refuses as non-canonical.
var oracleEndpoints = []endpoint{
	{"/kapacitor/v1/tasks", "{}"},
	{"/kapacitor/v1/ping", ""},
	{"/write?db=db1", linePoint},
	{"/kapacitor/v1/", ""},
	{"/kapacitor/v1/tasks/t1", "{}"},
	{"/kapacitor/v1/templates", "{}"},
	{"/kapacitor/v1/templates/tpl1", "{}"},
	{"/kapacitor/v1/recordings", "{}"},
	{"/kapacitor/v1/replays", "{}"},
	{"/kapacitor/v1/config", "{}"},
	{"/kapacitor/v1/config/smtp", "{}"},
	{"/kapacitor/v1/alerts/topics", "{}"},
	{"/kapacitor/v1/alerts/topics/main/handlers", "{}"},
	{"/kapacitor/v1/service-tests", "{}"},
	{"/kapacitor/v1/storage/stores", "{}"},
	{"/kapacitor/v1/debug/vars", ""},
	{"/kapacitor/v1/loglevel", `{"level":"DEBUG"}`},
	{"/kapacitor/v1/users", "{}"},
	{"/kapacitor/v1preview/logs", ""},
	{"/kapacitor/v1preview/alerts/topics", "{}"},
	{"/kapacitor/v1/write?db=db1", linePoint},
	{"/write?db=db2", linePoint},
	{"/write?db=my%2Fdb", linePoint},
	{"/write?db=db1&db=db2", linePoint},
	{"/write", linePoint},
	{"/kapacitor/v1/tasks/../config", "{}"},
	{"/kapacitor/v1/tasks%2Ft1", "{}"},
}

// oracleCredentials is every credential form of SPEC §1 and §5 over the oracle's users.
func oracleCredentials(t *testing.T) []credential {
	basic := func(name, user, password string) credential {
		return credential{name: name, user: user, apply: func(r *http.Request) string {
			r.SetBasicAuth(user, password)
			return ""
		}}
	}
	header := func(name, user, value, query string) credential {
		return credential{name: name, user: user, apply: func(r *http.Request) string {
			if value != "" {
				r.Header.Set("Authorization", value)
			}
			return query
		}}
	}
	token := func(method jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
		signed, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatalf("signing %v: %v", claims, err)
		}
		return "Bearer " + signed
	}
	in := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	var credentials []credential
	credentials = append(credentials, basic("basic admin", adminName, adminPassword))
	for _, user := range oracleUsers {
		credentials = append(credentials, basic("basic "+user.name, user.name, oraclePassword(user.name)))
	}
	// The none algorithm: a header and claims with an empty signature.
	none := "Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"username":"writer","exp":%d}`, in(time.Hour))) + "."
	ghost := basic("basic unknown user", "ghost", "ghost-pass-1")
	ghost.slow = true
	ghostToken := header("bearer unknown user", "ghost", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "ghost", "exp": in(time.Hour)}), "")
	ghostToken.slow = true
	credentials = append(credentials,
		basic("basic wrong password", "writer", "wrong"),
		basic("basic empty username", "", "pw"),
		basic("basic ~subscriber", "~subscriber", "some-token"),
		header("basic lower-case scheme", "writer", "basic "+base64.StdEncoding.EncodeToString([]byte("writer:"+oraclePassword("writer"))), ""),
		header("basic bad base64", "", "Basic !!!", ""),
		header("no credentials", "", "", ""),
		header("query writer", "writer", "", "u=writer&p="+oraclePassword("writer")),
		header("query reader", "reader", "", "u=reader&p="+oraclePassword("reader")),
		header("query without password", "writer", "", "u=writer"),
		header("query wrong password", "writer", "", "u=writer&p=wrong"),
		header("other scheme then query", "reader", "Token abc", "u=reader&p="+oraclePassword("reader")),
		header("basic and query", "writer", "Basic "+base64.StdEncoding.EncodeToString([]byte("writer:"+oraclePassword("writer"))), "u=reader&p="+oraclePassword("reader")),
		header("bearer HS256 writer", "writer", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "writer", "exp": in(time.Hour)}), ""),
		header("bearer HS384 reader", "reader", token(jwt.SigningMethodHS384, gatewaySecret, jwt.MapClaims{"username": "reader", "exp": in(time.Hour)}), ""),
		header("bearer HS512 roleuser", "roleuser", token(jwt.SigningMethodHS512, gatewaySecret, jwt.MapClaims{"username": "roleuser", "exp": in(time.Hour)}), ""),
		header("bearer HS256 dbwriter", "dbwriter", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "dbwriter", "exp": in(time.Hour)}), ""),
		header("bearer expired", "writer", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "writer", "exp": in(-time.Hour)}), ""),
		header("bearer foreign secret", "writer", token(jwt.SigningMethodHS256, "another-secret", jwt.MapClaims{"username": "writer", "exp": in(time.Hour)}), ""),
		header("bearer alg none", "writer", none, ""),
		header("bearer without exp", "writer", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "writer"}), ""),
		header("bearer numeric username", "", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": 7, "exp": in(time.Hour)}), ""),
		header("bearer empty username", "", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "", "exp": in(time.Hour)}), ""),
		header("bearer issued in the future", "writer", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "writer", "exp": in(time.Hour), "iat": in(time.Hour)}), ""),
		header("bearer not valid yet", "writer", token(jwt.SigningMethodHS256, gatewaySecret, jwt.MapClaims{"username": "writer", "exp": in(time.Hour), "nbf": in(time.Hour)}), ""),
		header("bearer garbage", "", "Bearer not.a.token", ""),
		ghost, ghostToken,
	)
	return credentials
}

// noRedirects is an HTTP client that reports a redirect instead of following it.
var noRedirects = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ask sends one request of the corpus to addr and reads the answer.
func ask(t *testing.T, addr string, credential credential, method string, endpoint endpoint) answer {
	var body io.Reader
	if method == "POST" || method == "PATCH" || method == "PUT" {
		body = strings.NewReader(endpoint.body)
	}
	request, err := http.NewRequest(method, "http://"+addr+endpoint.target, body)
	if err != nil {
		t.Errorf("request %s %s: %v", method, endpoint.target, err)
		return answer{}
	}
	if query := credential.apply(request); query != "" {
		if request.URL.RawQuery != "" {
			request.URL.RawQuery += "&"
		}
		request.URL.RawQuery += query
	}
	response, err := noRedirects.Do(request)
	if err != nil {
		return answer{status: -1, text: err.Error()}
	}
	defer response.Body.Close()
	if response.StatusCode < 400 {
		// Successful answers come from two different kapacitords; only the status counts.
		return answer{status: response.StatusCode}
	}
	raw, _ := io.ReadAll(io.LimitReader(response.Body, 64*1024))
	return answer{status: response.StatusCode, text: errorText(raw)}
}

// errorText is the `error` of a JSON error body (Kapacitor adds a `message` twin,
// kapauth does not: README), or the body itself, trimmed.
func errorText(raw []byte) string {
	var doc struct {
		Error *string `json:"error"`
	}
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&doc) == nil && doc.Error != nil {
		return *doc.Error
	}
	return strings.TrimSpace(string(raw))
}

// documentedDifference names the README difference a pair shows, or "" for none. Each
// kind is one bullet of README's "Where kapauth differs from Kapacitor".
func documentedDifference(credential credential, method string, endpoint endpoint, kapauth, kapacitor answer) string {
	denied := func(a answer) bool { return a.status == 401 || a.status == 403 }
	switch {
	case credential.user == "~subscriber" && kapauth == answer{401, "subscription tokens are not supported; give the subscription a meta user"}:
		return "~subscriber refused"
	case nonCanonical[endpoint.target] && kapauth.status == 400:
		return "non-canonical path refused"
	case credential.user == "roleuser" && kapacitor.status == 403 && kapauth != kapacitor:
		// Kapacitor ignores the role that grants roleuser KapacitorAPI; kapauth merges it,
		// so a /write gets as far as the database check.
		return "role permissions merged"
	case !routedMethods[method] && kapacitor == answer{404, "Not Found"} && denied(kapauth):
		return "unrouted method authenticated"
	case endpoint.target == "/kapacitor/v1/users" && kapauth == answer{404, "Not Found"}:
		return "no Kapacitor user API"
	case credential.user == "ghost" && kapauth == answer{401, "authorization failed"} &&
		kapacitor.status == 401 && strings.HasPrefix(kapacitor.text, `retrieving user "ghost"`):
		return "token for an unknown user"
	case credential.name == "bearer garbage" && kapauth.status == 401 && kapacitor.status == 401 &&
		strings.HasPrefix(kapauth.text, "invalid token: ") && strings.HasPrefix(kapacitor.text, "invalid token: "):
		return "unparsable token's text"
	}
	return ""
}

// nonCanonical are the corpus's targets kapauth refuses (SPEC §7).
var nonCanonical = map[string]bool{
	"/kapacitor/v1/tasks/../config": true,
	"/kapacitor/v1/tasks%2Ft1":      true,
}

// routedMethods are the methods Kapacitor's httpd routes (services/httpd/handler.go);
// it answers any other, `get` included, 404 before authentication.
var routedMethods = map[string]bool{
	"GET": true, "POST": true, "PATCH": true, "PUT": true, "DELETE": true, "HEAD": true, "OPTIONS": true,
}

func oracleReport(size int, kinds map[string]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "oracle: %d request pairs", size)
	names := make([]string, 0, len(kinds))
	total := 0
	for kind, count := range kinds {
		names = append(names, kind)
		total += count
	}
	sort.Strings(names)
	fmt.Fprintf(&b, ", %d differ\n", total)
	for _, kind := range names {
		fmt.Fprintf(&b, "  %-32s %d\n", kind, kinds[kind])
	}
	return b.String()
}
