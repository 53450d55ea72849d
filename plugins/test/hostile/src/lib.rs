//! Test plugin: an adversary. It plays all three worlds and answers like a plugin out to hurt
//! its host — but only when asked to, so the same configuration also runs an ordinary container
//! and proves the host still answers after each attack. The attack is chosen by the container's
//! name (for `validate-name`, which sees nothing else) or its `attack` label:
//!
//! - name `long-reason`: a 1.5 MiB deny reason full of terminal escapes;
//! - name `escape-reason`: a deny reason of terminal controls (CSI, OSC, CR, BS, BEL, C1, bidi);
//! - name `log-flood`: 20 000 log messages of 4 KiB in one call, then allow;
//! - name `trap`: a panic with a long message of escapes;
//! - `attack=bad-name` / `long-name`: generates a name breaking the host's rule / of 1 MiB;
//! - `attack=backend`: selects a 1 MiB "backend" of escapes;
//! - `attack=patch-env` / `patch-nul` / `patch-mount` / `patch-limits`: a pre-create patch the
//!   CLI's own flags would refuse (`=` in an env key, NUL in one, a relative mount target,
//!   pids 0, a DNS server that is a name, a host entry whose address is not one);
//!   `patch-dns`/`patch-host` are the last two; `patch-count`: 100 000 env entries;
//!   `patch-bytes`: a 1 MiB label;
//! - `attack=deny-hook`: denies at pre-create with a long reason of escapes;
//! - `attack=deny-post`: denies at post-start (which only observes) with terminal controls;
//! - `attack=hook-flood`: floods the log at every hook.
//!
//! Anything else: allow, the first candidate backend, no patch.

wit_bindgen::generate!({
    inline: "
        package berth:test-hostile;
        world hostile {
            include berth:plugin/name-policy@0.4.0;
            include berth:plugin/backend-policy@0.4.0;
            include berth:plugin/lifecycle-hooks@0.4.0;
        }
    ",
    path: "../../../wit",
    world: "berth:test-hostile/hostile",
    generate_all,
});

use berth::plugin::log::{self, Level};
use berth::plugin::types::{
    BackendInfo, ContainerSpec, DnsConfig, Event, Hook, HostEntry, Limits, Mount, Patch,
};

struct Hostile;

/// Everything a terminal acts on: clear screen, retitle (OSC), carriage return over the line,
/// backspace, bell, an 8-bit CSI, and a right-to-left override.
const CONTROLS: &str = "\x1b[2J\x1b]0;pwned\x07\rberth: ok\x08\x08\u{9b}31m\u{202e}desrever";

fn attack(spec: &ContainerSpec) -> &str {
    spec.labels
        .iter()
        .find(|(k, _)| k == "attack")
        .map_or("", |(_, v)| v.as_str())
}

fn flood() {
    let message = format!("{CONTROLS} {}", "f".repeat(4096));
    for _ in 0..20_000 {
        log::log(Level::Warn, &message);
    }
}

fn patch() -> Patch {
    Patch {
        env: vec![],
        labels: vec![],
        mounts: vec![],
        limits: None,
        dns: None,
        extra_hosts: Vec::new(),
    }
}

impl exports::berth::plugin::naming::Guest for Hostile {
    fn validate_name(_: String, name: String) -> Result<(), String> {
        match name.as_str() {
            "long-reason" => Err(format!("{CONTROLS} ").repeat(30_000)),
            "escape-reason" => Err(CONTROLS.to_string()),
            "log-flood" => {
                flood();
                Ok(())
            }
            "trap" => panic!("{}", CONTROLS.repeat(10_000)),
            _ => Ok(()),
        }
    }

    fn generate_name(_: String, spec: ContainerSpec) -> Result<Option<String>, String> {
        match attack(&spec) {
            "bad-name" => Ok(Some(format!("evil{CONTROLS}/../name"))),
            "long-name" => Ok(Some("a".repeat(1 << 20))),
            _ => Ok(None),
        }
    }
}

impl exports::berth::plugin::placement::Guest for Hostile {
    fn select_backend(spec: ContainerSpec, candidates: Vec<BackendInfo>) -> Result<String, String> {
        match attack(&spec) {
            "backend" => Ok(CONTROLS.repeat(1 << 20 >> 6)),
            _ => candidates
                .into_iter()
                .next()
                .map(|c| c.name)
                .ok_or_else(|| "no candidates".to_string()),
        }
    }
}

impl exports::berth::plugin::hooks::Guest for Hostile {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        let attack = attack(&spec);
        if attack == "hook-flood" {
            flood();
            return Ok(None);
        }
        if attack == "deny-post" && event.hook == Hook::PostStart {
            return Err(CONTROLS.to_string());
        }
        if event.hook != Hook::PreCreate {
            return Ok(None);
        }
        let mut patch = patch();
        match attack {
            "patch-env" => patch.env.push(("A=B".into(), "1".into())),
            "patch-nul" => patch.env.push(("A\0B".into(), "1".into())),
            "patch-mount" => patch.mounts.push(Mount {
                source: "/tmp".into(),
                target: "relative".into(),
                readonly: false,
            }),
            "patch-limits" => {
                patch.limits = Some(Limits {
                    cpu_millis: None,
                    memory_bytes: None,
                    pids: Some(0),
                })
            }
            "patch-count" => {
                patch.env = (0..100_000)
                    .map(|i| (format!("K{i}"), "v".into()))
                    .collect()
            }
            "patch-bytes" => patch.labels.push(("big".into(), "b".repeat(1 << 20))),
            "patch-dns" => {
                patch.dns = Some(DnsConfig {
                    servers: vec!["resolver.corp".into()],
                    search: vec![],
                    options: vec![],
                })
            }
            "patch-host" => patch.extra_hosts.push(HostEntry {
                name: "db".into(),
                address: "10.0.0.256".into(),
            }),
            "deny-hook" => return Err(format!("{CONTROLS} ").repeat(30_000)),
            _ => return Ok(None),
        }
        Ok(Some(patch))
    }
}

export!(Hostile);
