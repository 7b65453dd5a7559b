//! The command line, black-box (SPEC §9): help, version, usage errors with exit code 2,
//! check-config printing the effective configuration with secrets redacted, exit code 1
//! with a precise message on a bad configuration.

use std::process::{Command, Output};

fn kapauth(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kapauth"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    // Only the variables a case sets may reach the program.
    for (name, _) in std::env::vars() {
        if name.starts_with("KAPACITOR_") || name.starts_with("KAPAUTH_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the kapauth binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_is_printed_for_the_program_and_each_command() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["meta", "-h"],
        &["check-config", "--help"],
        &["version", "--help"],
    ] {
        let output = kapauth(args, &[]);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(
            text(&output.stdout).contains("Usage: kapauth"),
            "{args:?}: {}",
            text(&output.stdout)
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    let output = kapauth(&["version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        format!("kapauth {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line_on_stderr_with_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "--bogus"],
            "kapauth: unknown flag --bogus for 'kapauth serve'; run 'kapauth serve --help'\n",
        ),
        (
            &["meta", "--config"],
            "kapauth: --config needs a value (a config file path)\n",
        ),
        (
            &["frobnicate"],
            "kapauth: unknown command \"frobnicate\"; run 'kapauth --help' for the list\n",
        ),
        (
            &[],
            "kapauth: no command given; run 'kapauth --help' for the list\n",
        ),
    ];
    for (args, expected) in cases {
        let output = kapauth(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&output.stderr), *expected, "{args:?}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn check_config_prints_the_sample_config_with_origins() {
    let output = kapauth(&["check-config", "--config", "etc/kapauth.conf"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("[http]\n  bind-address = \"127.0.0.1:9092\"  # etc/kapauth.conf line 6\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  dir = \"data/meta\"  # etc/kapauth.conf line 28\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  meta-timeout = \"10s\"  # etc/kapauth.conf line 18\n"),
        "{stdout}"
    );
}

#[test]
fn check_config_layers_environment_and_flags_and_redacts_secrets() {
    let output = kapauth(
        &[
            "check-config",
            "--config",
            "etc/kapauth.conf",
            "--set",
            "auth.meta-addr=meta2:8091",
        ],
        &[
            ("KAPACITOR_AUTH_META_ADDR", "meta1:8091"),
            ("KAPACITOR_AUTH_META_USERNAME", "kapauth"),
            ("KAPACITOR_AUTH_META_PASSWORD", "s3cr3t-meta"),
            ("KAPACITOR_HTTP_SHARED_SECRET", "s3cr3t-jwt"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("  meta-addr = \"meta2:8091\"  # from --set\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  meta-password = \"<redacted>\"  # from KAPACITOR_AUTH_META_PASSWORD\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  shared-secret = \"<redacted>\"  # from KAPACITOR_HTTP_SHARED_SECRET\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

#[test]
fn a_bad_config_names_the_problem_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("kapauth-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.conf");
    std::fs::write(
        &file,
        "[http]\n  bind-address = \":9092\"\n\n[auth]\n  cache-expiration = \"ten minutes\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    for program in ["check-config", "serve", "meta"] {
        let output = kapauth(&[program, "--config", path], &[]);
        assert_eq!(output.status.code(), Some(1), "{program}");
        assert_eq!(
            text(&output.stderr),
            format!(
                "kapauth: config: [auth] cache-expiration = \"ten minutes\" ({path} line 5) is not a duration; write e.g. \"10m\"\n"
            ),
            "{program}"
        );
    }
    let output = kapauth(
        &["check-config"],
        &[("KAPAUTH_GATEWAY_UPSTREAM", "127.0.0.1:9093")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "kapauth: config: [gateway] upstream = \"127.0.0.1:9093\" (from KAPAUTH_GATEWAY_UPSTREAM) is not an http://host:port address; write e.g. \"http://127.0.0.1:9093\"\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
