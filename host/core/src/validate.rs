//! The one set of rules a container spec must follow, wherever it comes from: CLI flags, a
//! spec file, or a plugin's patch. A spec that passes can be created and started; one that
//! does not is refused up front, naming the field and the valid range, rather than failing
//! later inside a backend with an opaque error.

use crate::error::{Error, Result};
use crate::types::ContainerSpec;

/// The smallest CPU limit the kernel enforces: a 1 ms quota per 100 ms period (0.01 CPUs).
pub const MIN_CPU_MILLIS: u64 = 10;
/// Below this no process starts (the runtime's own init needs a few MiB).
pub const MIN_MEMORY_BYTES: u64 = 4 << 20;
/// Past this a label, env value or path is not a mistake worth carrying.
const MAX_TEXT: usize = 64 << 10;

/// Checks every field of `spec`; the first broken rule is the error.
pub fn spec(spec: &ContainerSpec) -> Result<()> {
    let invalid =
        |what: String, reason: &str, hint: &str| Err(Error::invalid(what, reason).with_hint(hint));
    text("image", &spec.image)?;
    if spec.image.trim().is_empty() {
        return invalid(
            "image".into(),
            "it is empty",
            "name an image, e.g. busybox:local",
        );
    }
    for arg in spec.command.iter().chain(spec.entrypoint.iter().flatten()) {
        text("command argument", arg)?;
    }
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return invalid(
                format!("environment variable {key:?}"),
                "a name must be non-empty and hold neither '=' nor NUL",
                "use -e NAME=VALUE",
            );
        }
        text(&format!("environment variable {key}"), value)?;
    }
    for (key, value) in &spec.labels {
        if key.is_empty() {
            return invalid("label".into(), "its key is empty", "use -l KEY=VALUE");
        }
        text("label key", key)?;
        text(&format!("label {key}"), value)?;
    }
    if let Some(path) = spec.log_path.as_ref().filter(|p| !p.is_absolute()) {
        return invalid(
            format!("log path {}", path.display()),
            "it is not absolute",
            "give the full path of the log file",
        );
    }
    for mount in &spec.mounts {
        text("mount source", &mount.source)?;
        text("mount target", &mount.target)?;
        if mount.source.is_empty() {
            return invalid(
                format!("mount on {:?}", mount.target),
                "its source is empty",
                "give a host path or a volume name",
            );
        }
        // Docker's binds are `SOURCE:TARGET[:ro]`, and -v splits on ':' too.
        if mount.source.contains(':') || mount.target.contains(':') {
            return invalid(
                format!("mount {}:{}", mount.source, mount.target),
                "a mount's source and target cannot hold ':'",
                "use a path without ':'",
            );
        }
        if !mount.target.starts_with('/') {
            return invalid(
                format!("mount target {:?}", mount.target),
                "it must be an absolute path inside the container",
                "e.g. -v data:/data",
            );
        }
    }
    let limits = &spec.limits;
    if let Some(millis) = limits.cpu_millis {
        let most = machine_cpu_millis();
        if !(MIN_CPU_MILLIS..=most).contains(&millis) {
            return invalid(
                format!("CPU limit {}", cpus(millis)),
                &format!(
                    "it must be between {} and {} (this machine's CPUs)",
                    cpus(MIN_CPU_MILLIS),
                    cpus(most)
                ),
                "set --cpus within that range",
            );
        }
    }
    if limits.pids == Some(0) {
        return invalid(
            "pids limit 0".into(),
            "a container needs at least one process",
            "use --pids-limit 1 or more, or leave it out for no limit",
        );
    }
    if let Some(bytes) = limits.memory_bytes
        && !(MIN_MEMORY_BYTES..=i64::MAX as u64).contains(&bytes)
    {
        return invalid(
            format!("memory limit {bytes} bytes"),
            "it must be at least 4 MiB, which a process needs to start",
            "use e.g. --memory 64m",
        );
    }
    if let Some(hostname) = &spec.hostname {
        hostname_rule(hostname)?;
    }
    if let Some(dir) = &spec.working_dir {
        text("working directory", dir)?;
        if !dir.starts_with('/') {
            return invalid(
                format!("working directory {dir:?}"),
                "it must be an absolute path",
                "e.g. -w /srv",
            );
        }
    }
    for server in &spec.dns {
        if server.parse::<std::net::IpAddr>().is_err() {
            return invalid(
                format!("DNS server {server:?}"),
                "it is not an IP address",
                "use --dns 10.0.0.2",
            );
        }
    }
    for domain in &spec.dns_search {
        hostname_rule(domain.strip_suffix('.').unwrap_or(domain)).map_err(|_| {
            Error::invalid(
                format!("DNS search domain {domain:?}"),
                "it must be a domain name (letters, digits, inner hyphens, dots)",
            )
            .with_hint("e.g. --dns-search example.com")
        })?;
    }
    for entry in &spec.extra_hosts {
        if !crate::HostEntry::valid_name(&entry.name) {
            return invalid(
                format!("host entry {}:{}", entry.name, entry.ip),
                crate::HostEntry::NAME_RULE,
                "use NAME:IP, e.g. --add-host db:10.0.0.5",
            );
        }
    }
    for option in &spec.dns_options {
        let printable = !option.is_empty() && option.bytes().all(|b| b.is_ascii_graphic());
        if !printable {
            return invalid(
                format!("DNS option {option:?}"),
                "it must be one word of printable characters",
                "e.g. --dns-option ndots:2",
            );
        }
    }
    if let Some(network) = &spec.network {
        network.cidr()?;
    }
    let special = |n: &String| n == crate::NETWORK_NONE || n == crate::NETWORK_HOST;
    if spec.networks.len() > 1 && spec.networks.iter().any(special) {
        return invalid(
            format!("networks {:?}", spec.networks),
            "`none` and `host` cannot be combined with other networks",
            "give --network none, --network host, or network names",
        );
    }
    for name in spec.networks.iter().filter(|n| !special(n)) {
        network_name(name)?;
    }
    Ok(())
}

/// Network names follow container names' rule, capped shorter (they name files and
/// bridge interfaces are derived from them).
pub fn network_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name.len() <= 64;
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        format!("network name {name:?}"),
        "it must start with a letter or digit and hold only letters, digits, '_', '.' and '-' \
         (at most 64 bytes)",
    )
    .with_hint("e.g. berth network create backend"))
}

/// The host's rule for container names (docker's): a letter or digit, then letters, digits,
/// `_`, `.` and `-`, at most 128 bytes. Name policies may be stricter, never looser: the engine
/// checks every name with it, and the plugin runtime checks a generated name with it before
/// using it, so a plugin's broken name is reported as the plugin's fault.
pub fn container_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && name.len() <= MAX_NAME;
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        format!(
            "container name {:?}",
            crate::text::truncated(name, MAX_NAME)
        ),
        "must start with a letter or digit and use only [a-zA-Z0-9_.-], at most 128 characters",
    ))
}

/// The longest container name.
const MAX_NAME: usize = 128;

/// The online CPUs, as docker counts them for `--cpus`, in thousandths.
fn machine_cpu_millis() -> u64 {
    let online = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .unwrap_or(1);
    online.max(1) as u64 * 1000
}

/// `1500` -> `1.5`.
fn cpus(millis: u64) -> String {
    let whole = format!("{:.3}", millis as f64 / 1000.0);
    whole
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// Bounded, with no NUL (which no kernel interface carries).
fn text(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(
            format!("{what} {value:?}"),
            "it holds a NUL byte",
        ));
    }
    if value.len() > MAX_TEXT {
        return Err(Error::invalid(
            what.to_string(),
            format!("it is {} bytes long, more than {MAX_TEXT}", value.len()),
        ));
    }
    Ok(())
}

/// RFC 1123: dot-separated labels of letters, digits and inner hyphens, 63 bytes each.
fn hostname_rule(hostname: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if hostname.len() <= 253 && hostname.split('.').all(label_ok) {
        return Ok(());
    }
    Err(Error::invalid(
        format!("hostname {hostname:?}"),
        "it must be dot-separated labels of letters, digits and inner hyphens (RFC 1123)",
    )
    .with_hint("e.g. --hostname web-1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Mount;

    fn base() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        }
    }

    #[track_caller]
    fn refused(change: impl FnOnce(&mut ContainerSpec), needle: &str) {
        let mut s = base();
        change(&mut s);
        let err = spec(&s).expect_err(needle).to_string();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn a_plain_spec_passes() {
        spec(&base()).unwrap();
        let mut full = base();
        full.env.insert("A".into(), "x=y".into());
        full.limits.cpu_millis = Some(500);
        full.limits.memory_bytes = Some(64 << 20);
        full.limits.pids = Some(1);
        full.hostname = Some("web-1.local".into());
        full.working_dir = Some("/srv".into());
        full.dns.push("10.0.0.2".into());
        spec(&full).unwrap();
    }

    #[test]
    fn each_broken_rule_is_named() {
        refused(|s| s.image.clear(), "image");
        refused(|s| drop(s.env.insert("A=B".into(), "1".into())), "\"A=B\"");
        refused(
            |s| drop(s.env.insert(String::new(), "1".into())),
            "environment",
        );
        refused(|s| drop(s.env.insert("A".into(), "a\0b".into())), "NUL");
        refused(
            |s| {
                s.mounts.push(Mount {
                    source: "/srv".into(),
                    target: "relative".into(),
                    readonly: false,
                    owner: None,
                })
            },
            "absolute",
        );
        refused(
            |s| {
                s.mounts.push(Mount {
                    source: String::new(),
                    target: "/data".into(),
                    readonly: false,
                    owner: None,
                })
            },
            "source is empty",
        );
        refused(
            |s| {
                s.mounts.push(Mount {
                    source: "/srv".into(),
                    target: "/a:b".into(),
                    readonly: false,
                    owner: None,
                })
            },
            "cannot hold ':'",
        );
        refused(
            |s| {
                s.extra_hosts.push(crate::HostEntry {
                    name: "db host".into(),
                    ip: [10, 0, 0, 5].into(),
                })
            },
            "host entry db host:10.0.0.5",
        );
        refused(|s| s.limits.cpu_millis = Some(0), "between 0.01");
        refused(
            |s| s.limits.cpu_millis = Some(1 << 40),
            "this machine's CPUs",
        );
        refused(|s| s.limits.pids = Some(0), "pids limit 0");
        refused(|s| s.limits.memory_bytes = Some(1), "4 MiB");
        refused(|s| s.hostname = Some("-bad".into()), "RFC 1123");
        refused(|s| s.working_dir = Some("srv".into()), "absolute");
        refused(|s| s.dns.push("resolver".into()), "not an IP");
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in [
            "web",
            "app-0123abcd-0001",
            "a.b_c-d",
            "9lives",
            &"x".repeat(128),
        ] {
            assert!(container_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-web",
            "we b",
            "a/b",
            "ünï",
            "a\x1b[2J",
            &"x".repeat(129),
        ] {
            assert!(container_name(bad).is_err(), "{bad:?}");
        }
        // A huge name is not echoed in full.
        let err = container_name(&"x/".repeat(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 1024, "{}", err.len());
    }

    #[test]
    fn cpus_print_as_users_write_them() {
        assert_eq!(cpus(1500), "1.5");
        assert_eq!(cpus(10), "0.01");
        assert_eq!(cpus(2000), "2");
    }
}
