package kapacitor

// The `kapacitor` CLI built from Kapacitor's module, run the way the seed documents run it
// (`kapacitor -url http://user:pass@host:port …`), through kapauth to a real kapacitord.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliTimeout bounds one CLI run that is expected to finish.
const cliTimeout = 30 * time.Second

// cliResult is what a finished CLI run printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `kapacitor -url URL ARGS…` to completion.
func cli(t *testing.T, url string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := cliCommand(t, ctx, url, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		result.code = exit.ExitCode()
	default:
		t.Fatalf("kapacitor %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("kapacitor %v did not finish within %v", args, cliTimeout)
	}
	return result
}

func cliCommand(t *testing.T, ctx context.Context, url string, args ...string) *exec.Cmd {
	t.Helper()
	binary := os.Getenv("KAPACITOR_CLI")
	if binary == "" {
		t.Fatal("KAPACITOR_CLI is not set; run the suite with `make interop`, which builds the kapacitor CLI and sets it")
	}
	cmd := exec.CommandContext(ctx, binary, append([]string{"-url", url}, args...)...)
	// KAPACITOR_URL and friends from the environment must not steer the CLI.
	cmd.Env = cleanCLIEnv()
	return cmd
}

func cleanCLIEnv() []string {
	var env []string
	for _, variable := range os.Environ() {
		if !strings.HasPrefix(strings.ToUpper(variable), "KAPACITOR_") {
			env = append(env, variable)
		}
	}
	return env
}

// writeTick writes the test TICKscript to a file for `define -tick`.
func writeTick(t *testing.T) string {
	t.Helper()
	tick := filepath.Join(t.TempDir(), "cpu_alert.tick")
	if err := os.WriteFile(tick, []byte(tickscript), 0o600); err != nil {
		t.Fatalf("writing %s: %v", tick, err)
	}
	return tick
}

func (r cliResult) requireSuccess(t *testing.T, what string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s exited %d; stdout %q stderr %q", what, r.code, r.stdout, r.stderr)
	}
}

func TestCLIDefinesListsShowsAndDeletesATask(t *testing.T) {
	s := newStack(t)
	url := s.url(writerName, writerPassword)
	tick := writeTick(t)

	list := cli(t, url, "list", "tasks")
	list.requireSuccess(t, "list tasks")
	if !strings.HasPrefix(list.stdout, "ID ") || strings.Contains(list.stdout, "cpu_alert") {
		t.Errorf("list tasks on a fresh kapacitord printed %q", list.stdout)
	}

	cli(t, url, "define", "cpu_alert", "-type", "stream", "-tick", tick, "-dbrp", "telegraf.autogen").
		requireSuccess(t, "define cpu_alert")
	list = cli(t, url, "list", "tasks")
	list.requireSuccess(t, "list tasks")
	if !strings.Contains(list.stdout, "cpu_alert") || !strings.Contains(list.stdout, `["telegraf"."autogen"]`) {
		t.Errorf("list tasks after define printed %q", list.stdout)
	}

	show := cli(t, url, "show", "cpu_alert")
	show.requireSuccess(t, "show cpu_alert")
	for _, want := range []string{"ID: cpu_alert", "Type: stream", "Status: disabled", ".measurement('cpu')"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("show cpu_alert lacks %q; printed %q", want, show.stdout)
		}
	}

	cli(t, url, "delete", "tasks", "cpu_alert").requireSuccess(t, "delete tasks cpu_alert")
	list = cli(t, url, "list", "tasks")
	if strings.Contains(list.stdout, "cpu_alert") {
		t.Errorf("list tasks after delete printed %q", list.stdout)
	}
}

func TestCLIStatsGeneralComesThroughTheGateway(t *testing.T) {
	s := newStack(t)
	stats := cli(t, s.url(writerName, writerPassword), "stats", "general")
	stats.requireSuccess(t, "stats general")
	for _, want := range []string{"ClusterID:", "ServerID:", "Host:", "Tasks:", "Version:"} {
		if !strings.Contains(stats.stdout, want) {
			t.Errorf("stats general lacks %q; printed %q", want, stats.stdout)
		}
	}
}

func TestCLIShowsKapauthsRefusalsOnTheTerminal(t *testing.T) {
	s := newStack(t)
	check := func(url string, args []string, stderr string) {
		t.Helper()
		result := cli(t, url, args...)
		// The CLI prints `Error: ` and the error's text, and exits 3.
		if result.code != 3 || result.stderr != stderr {
			t.Errorf("kapacitor %v: exit %d stderr %q; want exit 3 stderr %q", args, result.code, result.stderr, stderr)
		}
	}
	check(s.url(readerName, readerPassword), []string{"list", "tasks"},
		"Error: user reader does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\"\n")
	check(s.url(readerName, readerPassword), []string{"stats", "general"},
		"Error: user reader does not have \"read\" privilege for API endpoint \"/kapacitor/v1/debug/vars\"\n")
	check(s.url(writerName, "wrong"), []string{"list", "tasks"}, "Error: authorization failed\n")
	check(s.url("nobody", "whatever"), []string{"list", "tasks"}, "Error: authorization failed\n")
	check("http://"+s.gateway, []string{"list", "tasks"}, "Error: unable to parse authentication credentials\n")
}

// streamUntil starts a streaming CLI command and returns once its output holds want,
// after calling trigger (which makes kapacitord log something) whenever the stream has
// shown nothing new; then it interrupts the CLI, as a user's Ctrl-C does, and requires it
// to exit.
func streamUntil(t *testing.T, url string, args []string, want string, trigger func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := cliCommand(t, ctx, url, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("kapacitor %v: %v", args, err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var seen []string
	found := false
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for !found {
		select {
		case line, open := <-lines:
			if !open {
				t.Fatalf("kapacitor %v ended before printing %q; printed %q, stderr %q", args, want, seen, stderr.String())
			}
			seen = append(seen, line)
			found = strings.Contains(line, want)
		case <-ticker.C:
			// The stream only shows what kapacitord logs after it began, so keep making logs.
			trigger()
		case <-ctx.Done():
			t.Fatalf("kapacitor %v printed no %q within %v; printed %q, stderr %q", args, want, cliTimeout, seen, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("interrupting kapacitor %v: %v", args, err)
	}
	go func() {
		for range lines {
		}
	}()
	if err := cmd.Wait(); err != nil && ctx.Err() != nil {
		t.Fatalf("kapacitor %v did not stop on an interrupt within %v", args, cliTimeout)
	}
	return strings.Join(seen, "\n")
}

func TestCLILogsStreamThroughTheGateway(t *testing.T) {
	s := newStack(t)
	url := s.url(writerName, writerPassword)
	c := newClient(t, "http://"+s.gateway, basicAuth(writerName, writerPassword))
	// Every request kapacitord serves is logged; a ping is the cheapest one.
	streamUntil(t, url, []string{"logs", "lvl=info"}, "/kapacitor/v1/ping", func() { _, _, _ = c.Ping() })
}

func TestCLIWatchStreamsATasksLogsThroughTheGateway(t *testing.T) {
	s := newStack(t)
	url := s.url(writerName, writerPassword)
	tick := writeTick(t)
	cli(t, url, "define", "cpu_alert", "-type", "stream", "-tick", tick, "-dbrp", "telegraf.autogen").
		requireSuccess(t, "define cpu_alert")
	enabled := false
	// Enabling and disabling the task makes kapacitord log lines tagged with it.
	streamUntil(t, url, []string{"watch", "cpu_alert"}, "cpu_alert", func() {
		action := "enable"
		if enabled {
			action = "disable"
		}
		cli(t, url, action, "cpu_alert").requireSuccess(t, action)
		enabled = !enabled
	})
}

func TestCLIStreamingIsRefusedWithoutPermission(t *testing.T) {
	s := newStack(t)
	result := cli(t, s.url(readerName, readerPassword), "logs")
	// The CLI reports a failed stream by its status alone (client/v1 Logs).
	if result.code != 3 || result.stderr != "Error: failed to retrieve logs: bad status code 403\n" {
		t.Errorf("logs as reader: exit %d stderr %q", result.code, result.stderr)
	}
}
