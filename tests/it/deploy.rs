//! `deploy/`: the compose files parse and say what a container of claw needs (read-only root,
//! a tmpfs /tmp, a volume for the data, a health check), and the systemd unit's `ExecStart`
//! uses only flags `claw serve --help` knows. (No container runtime here: the files are
//! checked by reading them.)

use std::path::Path;
use std::process::Command;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The compose file as a value with `<<` merge keys applied.
fn compose(file: &str) -> yaml_serde::Value {
    let mut value: yaml_serde::Value =
        yaml_serde::from_str(&deploy(file)).unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("deploy/{file}: merge keys: {e}"));
    value
}

fn claw_services(value: &yaml_serde::Value) -> Vec<(String, &yaml_serde::Value)> {
    let services = value["services"].as_mapping().expect("a services mapping");
    services
        .iter()
        .filter(|(name, _)| name.as_str().is_some_and(|n| n.starts_with("claw")))
        .map(|(name, service)| (name.as_str().unwrap().to_owned(), service))
        .collect()
}

fn check_claw_service(file: &str, name: &str, service: &yaml_serde::Value) {
    let at = format!("deploy/{file}: services.{name}");
    assert_eq!(service["read_only"].as_bool(), Some(true), "{at}.read_only");
    let tmpfs = service["tmpfs"].as_sequence().expect("tmpfs");
    assert!(
        tmpfs.iter().any(|t| t.as_str() == Some("/tmp")),
        "{at}.tmpfs"
    );
    let volumes = service["volumes"].as_sequence().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v.ends_with(":/var/lib/claw"))),
        "{at}.volumes: the data volume at /var/lib/claw"
    );
    let test = service["healthcheck"]["test"]
        .as_sequence()
        .expect("healthcheck");
    assert!(
        test.iter()
            .any(|t| t.as_str().is_some_and(|t| t.ends_with("/readyz"))),
        "{at}.healthcheck"
    );
    assert_eq!(
        service["build"]["dockerfile"].as_str(),
        Some("deploy/Dockerfile"),
        "{at}.build"
    );
}

#[test]
fn compose_single_node_on_sqlite() {
    let value = compose("compose.yaml");
    let services = claw_services(&value);
    assert_eq!(services.len(), 1, "one node");
    for (name, service) in &services {
        check_claw_service("compose.yaml", name, service);
        assert!(
            service["environment"]["CLAW_DATABASE_URL"].is_null(),
            "SQLite: no database URL"
        );
    }
}

#[test]
fn compose_ha_two_replicas_on_postgres_in_pull_mode() {
    let value = compose("compose.ha.yaml");
    let services = claw_services(&value);
    assert_eq!(services.len(), 2, "two replicas");
    assert!(value["services"]["postgres"]["healthcheck"].is_mapping());
    let example = deploy("claw.env.example");
    for var in [
        "CLAW_DATABASE_URL=postgres://",
        "CLAW_SECRET_KEY=",
        "CLAW_GIT_URL=",
    ] {
        assert!(example.contains(var), "deploy/claw.env.example lacks {var}");
    }
    for (name, service) in &services {
        check_claw_service("compose.ha.yaml", name, service);
        let env_file = service["env_file"].as_sequence().expect("env_file");
        assert_eq!(env_file[0].as_str(), Some("claw.env"));
        assert_eq!(
            service["depends_on"]["postgres"]["condition"].as_str(),
            Some("service_healthy")
        );
        // Each flag of its command is one `claw serve` knows.
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .expect("command")
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(command[0], "serve");
        check_flags(&format!("compose.ha.yaml {name}"), &command[1..]);
    }
}

/// `--flag`s of `args` all appear in `claw serve --help`.
fn check_flags(at: &str, args: &[&str]) {
    let help = Command::new(env!("CARGO_BIN_EXE_claw"))
        .args(["serve", "--help"])
        .output()
        .expect("claw serve --help");
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let flags: Vec<&str> = args
        .iter()
        .filter(|a| a.starts_with("--"))
        .copied()
        .collect();
    assert!(!flags.is_empty(), "{at}: no flags");
    for flag in flags {
        let flag = flag.split('=').next().unwrap();
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',')
                .any(|word| word == flag),
            "{at}: `{flag}` is not a flag of claw serve"
        );
    }
}

#[test]
fn systemd_unit_runs_claw_serve_with_known_flags_and_hardening() {
    let unit = deploy("claw.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("deploy/claw.service: ExecStart=");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/local/bin/claw");
    assert_eq!(args[1], "serve");
    check_flags("deploy/claw.service ExecStart", &args[2..]);
    // Everything it writes is under the StateDirectory.
    for (i, arg) in args.iter().enumerate() {
        if *arg == "--data" || *arg == "--manifests" {
            assert!(
                args[i + 1].starts_with("/var/lib/claw/"),
                "{arg} {}",
                args[i + 1]
            );
        }
    }
    for line in [
        "DynamicUser=yes",
        "StateDirectory=claw",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "deploy/claw.service lacks `{line}`"
        );
    }
    assert!(unit
        .lines()
        .any(|l| l.starts_with("RestrictAddressFamilies=")));
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_data_volume() {
    let file = deploy("Dockerfile");
    let lines: Vec<&str> = file.lines().map(str::trim).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(froms[0].starts_with("FROM rust:1.95-bookworm"));
    assert_eq!(*froms[1], "FROM debian:bookworm-slim");
    assert!(file.contains("--locked"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(lines.contains(&r#"VOLUME ["/var/lib/claw"]"#));
    assert!(lines.iter().any(|l| l.starts_with("HEALTHCHECK ")));
}
