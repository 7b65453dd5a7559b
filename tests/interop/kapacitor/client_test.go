package kapacitor

// Kapacitor's Go client library (client/v1) through kapauth to a real kapacitord: ping,
// tasks, the errors it makes of kapauth's 401 and 403, and bearer tokens.

import (
	"testing"

	client "github.com/influxdata/kapacitor/client/v1"

	"kapauth.test/interop/harness"
)

const tickscript = `stream
    |from()
        .measurement('cpu')
    |alert()
        .crit(lambda: "usage_idle" < 10)
        .log('/dev/null')
`

func newClient(t *testing.T, url string, credentials *client.Credentials) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: url, Credentials: credentials})
	if err != nil {
		t.Fatalf("client.New(%s): %v", url, err)
	}
	return c
}

func basicAuth(user, password string) *client.Credentials {
	return &client.Credentials{Method: client.UserAuthentication, Username: user, Password: password}
}

func TestClientPingsListsAndCreatesTasksThroughKapauth(t *testing.T) {
	s := newStack(t)
	c := newClient(t, "http://"+s.gateway, basicAuth(writerName, writerPassword))

	_, version, err := c.Ping()
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// The version header is Kapacitor's (build-kapacitord stamps it), passed through.
	if version != "1.7.6" {
		t.Errorf("Ping: X-Kapacitor-Version through the gateway = %q, want 1.7.6", version)
	}

	tasks, err := c.ListTasks(nil)
	if err != nil || len(tasks) != 0 {
		t.Fatalf("ListTasks on a fresh kapacitord = %v, %v", tasks, err)
	}
	created, err := c.CreateTask(client.CreateTaskOptions{
		ID:         "cpu_alert",
		Type:       client.StreamTask,
		DBRPs:      []client.DBRP{{Database: "telegraf", RetentionPolicy: "autogen"}},
		TICKscript: tickscript,
		Status:     client.Disabled,
	})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if created.ID != "cpu_alert" || created.Link.Href != "/kapacitor/v1/tasks/cpu_alert" {
		t.Errorf("CreateTask = %s at %s", created.ID, created.Link.Href)
	}
	tasks, err = c.ListTasks(nil)
	if err != nil || len(tasks) != 1 || tasks[0].ID != "cpu_alert" {
		t.Fatalf("ListTasks after CreateTask = %v, %v", tasks, err)
	}
	if err := c.DeleteTask(created.Link); err != nil {
		t.Errorf("DeleteTask: %v", err)
	}
}

func TestClientErrorsCarryKapauthsTexts(t *testing.T) {
	s := newStack(t)
	base := "http://" + s.gateway

	_, err := newClient(t, base, basicAuth(writerName, "wrong")).ListTasks(nil)
	harness.AssertError(t, err, "authorization failed")
	_, err = newClient(t, base, nil).ListTasks(nil)
	harness.AssertError(t, err, "unable to parse authentication credentials")
	_, err = newClient(t, base, basicAuth(readerName, readerPassword)).ListTasks(nil)
	harness.AssertError(t, err, `user reader does not have "read" privilege for API endpoint "/kapacitor/v1/tasks"`)
	// reader's ReadData grants /api/ping, so the ping goes through.
	if _, _, err := newClient(t, base, basicAuth(readerName, readerPassword)).Ping(); err != nil {
		t.Errorf("Ping as reader: %v", err)
	}
	_, err = newClient(t, base, basicAuth(readerName, readerPassword)).CreateTask(client.CreateTaskOptions{
		ID: "nope", Type: client.StreamTask, TICKscript: tickscript,
		DBRPs: []client.DBRP{{Database: "telegraf", RetentionPolicy: "autogen"}},
	})
	harness.AssertError(t, err, `user reader does not have "write" privilege for API endpoint "/kapacitor/v1/tasks"`)
}

func TestClientBearerTokenSignedWithTheSharedSecretIsAccepted(t *testing.T) {
	s := newStack(t)
	base := "http://" + s.gateway
	token := func(secret, user string) *client.Credentials {
		return &client.Credentials{Method: client.BearerAuthentication, Token: bearer(t, secret, user)}
	}

	if _, err := newClient(t, base, token(gatewaySecret, writerName)).ListTasks(nil); err != nil {
		t.Errorf("ListTasks with writer's token: %v", err)
	}
	_, err := newClient(t, base, token(gatewaySecret, readerName)).ListTasks(nil)
	harness.AssertError(t, err, `user reader does not have "read" privilege for API endpoint "/kapacitor/v1/tasks"`)
	_, err = newClient(t, base, token("another-secret", writerName)).ListTasks(nil)
	harness.AssertError(t, err, "invalid token: signature is invalid")
}
