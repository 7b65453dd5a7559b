package kapacitor

// Kapacitor's own meta client (services/auth/meta), the code a Kapacitor with auth on uses
// to reach a meta node, against `kapauth meta`: user lookups, what roles do and do not show
// it, /authorized, Basic and internal-shared-secret JWT credentials, and https.

import (
	"crypto/tls"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/influxdata/kapacitor/services/auth/meta"
	"golang.org/x/crypto/bcrypt"

	"kapauth.test/interop/harness"
)

const (
	adminName     = "admin"
	adminPassword = "admin-pass-1"
	// internalSecret is the meta API's [meta] internal-shared-secret in these tests.
	internalSecret = "interop-internal-secret"
)

// negativeTimeout bounds the meta client's retries where a test expects a refusal: the
// client retries every non-200 answer until its timeout, as it does against Enterprise.
const negativeTimeout = 300 * time.Millisecond

// metaWithUsers starts `kapauth meta` (with the internal secret set through the
// environment), makes the admin, alice (KapacitorAPI on every database, ReadData on db1)
// and a role ops holding alice with KapacitorConfigAPI.
func metaWithUsers(t *testing.T, launch harness.Launch) (*harness.Process, harness.MetaAdmin) {
	t.Helper()
	process := harness.Start(t, launch.WithEnv("KAPAUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	admin := harness.Bootstrap(t, process.Addr("meta"), adminName, adminPassword)
	admin.CreateUser(t, "alice", "alice-pass-1", map[string][]string{"": {"KapacitorAPI"}, "db1": {"ReadData"}})
	admin.Post(t, "/role", map[string]any{"action": "create", "role": map[string]any{"name": "ops"}})
	admin.Post(t, "/role", map[string]any{"action": "add-users", "role": map[string]any{"name": "ops", "users": []string{"alice"}}})
	admin.Post(t, "/role", map[string]any{"action": "add-permissions", "role": map[string]any{"name": "ops", "permissions": map[string][]string{"": {"KapacitorConfigAPI"}}}})
	return process, admin
}

func TestMetaClientLooksUpAUserWithBasicCredentials(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	client := meta.NewClient(process.Addr("meta"), meta.UseAuth(meta.BasicAuth, adminName, adminPassword, ""))

	users, err := client.Users("alice")
	if err != nil {
		t.Fatalf("Users(alice): %v", err)
	}
	if len(users) != 1 || users[0].Name != "alice" {
		t.Fatalf("Users(alice) = %+v, want alice alone", users)
	}
	alice := users[0]
	// Kapacitor verifies the password itself against this hash.
	if err := bcrypt.CompareHashAndPassword([]byte(alice.Hash), []byte("alice-pass-1")); err != nil {
		t.Errorf("alice's hash does not verify her password with Go's bcrypt: %v", err)
	}
	// Kapacitor reads only the user document: the role's KapacitorConfigAPI must not be
	// folded into it (kapauth merges roles itself; README's differences).
	want := map[string][]meta.Permission{
		"":    {meta.KapacitorAPIPermission},
		"db1": {meta.ReadDataPermission},
	}
	if len(alice.Permissions) != len(want) {
		t.Fatalf("alice's permissions = %v, want %v", alice.Permissions, want)
	}
	for scope, permissions := range want {
		if !slices.Equal(alice.Permissions[scope], permissions) {
			t.Errorf("alice's permissions on %q = %v, want %v", scope, alice.Permissions[scope], permissions)
		}
	}
}

func TestMetaClientListsEveryUserWithAnEmptyName(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	client := meta.NewClient(process.Addr("meta"),
		meta.UseAuth(meta.BasicAuth, adminName, adminPassword, ""),
		meta.WithTimeout(2*time.Second))

	// The client sends `GET /user?name=`; kapauth once answered it 404.
	users, err := client.Users("")
	if err != nil {
		t.Fatalf(`Users(""): %v`, err)
	}
	var names []string
	for _, user := range users {
		names = append(names, user.Name)
	}
	if !slices.Equal(names, []string{adminName, "alice"}) {
		t.Errorf(`Users("") names = %v, want [admin alice]`, names)
	}
}

func TestMetaClientSeesAnUnknownUserAsTheMetaAPIsNotFound(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	client := meta.NewClient(process.Addr("meta"),
		meta.UseAuth(meta.BasicAuth, adminName, adminPassword, ""),
		meta.WithTimeout(negativeTimeout))

	_, err := client.Users("nobody")
	assertMetaError(t, err, 404, "user not found")
}

func TestMetaClientChecksPasswordsThroughAuthorized(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	client := meta.NewClient(process.Addr("meta"),
		meta.UseAuth(meta.BasicAuth, adminName, adminPassword, ""),
		meta.WithTimeout(negativeTimeout))

	if err := client.CheckPass("alice", "alice-pass-1"); err != nil {
		t.Errorf("CheckPass with alice's password: %v", err)
	}
	assertMetaError(t, client.CheckPass("alice", "wrong"), 401, "authorization failed")
	assertMetaError(t, client.CheckPass("nobody", "whatever"), 401, "authorization failed")
}

func TestMetaClientIsRefusedWithAWrongPasswordOrWithoutPermission(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	addr := process.Addr("meta")

	wrong := meta.NewClient(addr, meta.UseAuth(meta.BasicAuth, adminName, "wrong", ""), meta.WithTimeout(negativeTimeout))
	_, err := wrong.Users("alice")
	assertMetaError(t, err, 401, "authorization failed")

	none := meta.NewClient(addr, meta.WithTimeout(negativeTimeout))
	_, err = none.Users("alice")
	assertMetaError(t, err, 401, "unable to parse authentication credentials")

	// alice holds neither ViewAdmin nor CreateUserAndRole, so she may not read users.
	alice := meta.NewClient(addr, meta.UseAuth(meta.BasicAuth, "alice", "alice-pass-1", ""), meta.WithTimeout(negativeTimeout))
	_, err = alice.Users("alice")
	assertMetaError(t, err, 403, `user "alice" needs the ViewAdmin or CreateUserAndRole permission for this request`)
}

func TestMetaClientAuthenticatesWithTheInternalSharedSecretJWT(t *testing.T) {
	process, _ := metaWithUsers(t, harness.Meta(t))
	addr := process.Addr("meta")

	// Kapacitor's auth service sends the HS512 token with an empty username
	// (services/auth/service.go); a named one must be accepted too.
	for _, username := range []string{"", "kapacitor"} {
		client := meta.NewClient(addr, meta.UseAuth(meta.BearerAuth, username, "", internalSecret))
		users, err := client.Users("alice")
		if err != nil || len(users) != 1 {
			t.Fatalf("Users(alice) with a JWT for %q = %v, %v", username, users, err)
		}
		if err := client.CheckPass("alice", "alice-pass-1"); err != nil {
			t.Errorf("CheckPass with a JWT for %q: %v", username, err)
		}
	}

	foreign := meta.NewClient(addr, meta.UseAuth(meta.BearerAuth, "", "", "another-secret"), meta.WithTimeout(negativeTimeout))
	_, err := foreign.Users("alice")
	assertMetaError(t, err, 401, "invalid token: signature is invalid")
}

func TestMetaClientSpeaksHTTPSToATLSMetaAPI(t *testing.T) {
	certificate, key, roots := harness.SelfSigned(t)
	launch := harness.Meta(t).
		Set("meta.https-certificate=" + certificate).
		Set("meta.https-private-key=" + key).
		Set("meta.https-enabled=true")
	process := harness.Start(t, launch.WithEnv("KAPAUTH_META_INTERNAL_SHARED_SECRET="+internalSecret))
	addr := process.Addr("meta")
	https := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
	}
	harness.MetaAdmin{Base: "https://" + addr, HTTP: https}.Bootstrap(t, adminName, adminPassword)

	client := meta.NewClient(addr,
		meta.WithTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, true, false),
		meta.UseAuth(meta.BearerAuth, "", "", internalSecret))
	users, err := client.Users(adminName)
	if err != nil || len(users) != 1 || users[0].Name != adminName {
		t.Fatalf("Users(admin) over https = %+v, %v", users, err)
	}
	if err := client.CheckPass(adminName, adminPassword); err != nil {
		t.Errorf("CheckPass over https: %v", err)
	}

	// Plain HTTP to the TLS listener is no answer the client can use.
	plain := meta.NewClient(addr, meta.UseAuth(meta.BearerAuth, "", "", internalSecret), meta.WithTimeout(negativeTimeout))
	if _, err := plain.Users(adminName); err == nil {
		t.Error("plain http to the https meta API succeeded")
	}
}

// assertMetaError requires err to be the meta client's timeout around (or a bare) meta.Error
// with the given status and message: the client retries non-200 answers until its timeout.
func assertMetaError(t *testing.T, err error, code int, message string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %q", code, message)
	}
	var timeout meta.TimeoutError
	if errors.As(err, &timeout) {
		err = timeout.Context
	}
	var metaError meta.Error
	if !errors.As(err, &metaError) {
		t.Fatalf("error %T %v, want a meta.Error %d %q", err, err, code, message)
	}
	if metaError.Code != code || metaError.Message != message {
		t.Errorf("meta.Error = %d %q, want %d %q", metaError.Code, metaError.Message, code, message)
	}
}
