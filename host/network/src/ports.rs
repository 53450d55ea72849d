//! Host ports published by containers: one claim file per protocol and port, made by
//! `link(2)` (which fails if it exists), so two containers are never given one port, even by
//! racing processes, and a claim is whole or absent after a crash.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use berth_core::{Error, PortMapping, Result};

fn claim_path(dir: &Path, port: &PortMapping, host_port: u16) -> PathBuf {
    dir.join(format!("{}-{host_port}", port.protocol))
}

/// The container holding a claim, if the claim is readable.
pub(crate) fn owner(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Claims every port of `ports` for container `id`, choosing a free host port where none
/// is given; all or nothing. A port another process of the host listens on is refused too:
/// the DNAT rule would hide it.
pub(crate) fn claim(
    dir: &Path,
    id: &str,
    name: &str,
    ports: &mut [PortMapping],
    holder: impl Fn(&str) -> String,
) -> Result<()> {
    berth_core::store::create_dir_all(dir)?;
    let mut claimed: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for port in ports.iter_mut() {
            let host_port = match port.host_port {
                Some(p) => p,
                None => free_port(port)?,
            };
            let path = claim_path(dir, port, host_port);
            let what = format!("host port {host_port}/{}", port.protocol);
            match owner(&path) {
                Some(owner) if owner == id => {}
                Some(owner) => {
                    return Err(Error::conflict(
                        what,
                        format!("container {} publishes it", holder(&owner)),
                    )
                    .with_hint("choose another host port, or remove that container"));
                }
                None => {
                    if let Err(e) = bindable(port, host_port) {
                        return Err(Error::conflict(
                            what,
                            format!("another program on this host uses it ({e})"),
                        )
                        .with_hint("choose another host port"));
                    }
                    let tmp = dir.join(format!(".claim-{id}-{host_port}"));
                    berth_core::store::atomic_write(&tmp, id.as_bytes(), 0o644)?;
                    let linked = std::fs::hard_link(&tmp, &path);
                    let _ = std::fs::remove_file(&tmp);
                    match linked {
                        Ok(()) => claimed.push(path),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            return Err(Error::conflict(
                                what,
                                format!("another container claimed it while {name} was created"),
                            ));
                        }
                        Err(e) => {
                            return Err(Error::io(format!("claiming {}", path.display()), e));
                        }
                    }
                }
            }
            port.host_port = Some(host_port);
        }
        Ok(())
    })();
    if result.is_err() {
        for path in claimed {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Drops every claim of container `id`.
pub(crate) fn release(dir: &Path, id: &str) -> Result<()> {
    for (path, owner) in claims(dir) {
        if owner.as_deref() == Some(id) {
            std::fs::remove_file(&path)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| Error::io(format!("releasing {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// Every claim file with its owner.
pub(crate) fn claims(dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .map(|p| {
            let owner = owner(&p);
            (p, owner)
        })
        .collect()
}

fn address(port: &PortMapping, host_port: u16) -> SocketAddr {
    let ip = port
        .host_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    SocketAddr::new(ip, host_port)
}

fn bindable(port: &PortMapping, host_port: u16) -> std::io::Result<()> {
    let at = address(port, host_port);
    match port.protocol.as_str() {
        "udp" => UdpSocket::bind(at).map(drop),
        "tcp" => TcpListener::bind(at).map(drop),
        _ => Ok(()),
    }
}

/// A port the kernel says is free now (`-p 80`: docker's ephemeral host port).
fn free_port(port: &PortMapping) -> Result<u16> {
    let at = address(port, 0);
    let chosen = match port.protocol.as_str() {
        "udp" => UdpSocket::bind(at).and_then(|s| s.local_addr()),
        _ => TcpListener::bind(at).and_then(|s| s.local_addr()),
    };
    chosen
        .map(|a| a.port())
        .map_err(|e| Error::io("choosing a free host port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> PortMapping {
        PortMapping::parse(text).unwrap()
    }

    #[test]
    fn a_port_is_claimed_once_and_released_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut first = [port(&format!("127.0.0.1:{free}:80"))];
        claim(dir.path(), "a", "web", &mut first, |o| o.to_string()).unwrap();
        // Idempotent for its owner.
        claim(dir.path(), "a", "web", &mut first, |o| o.to_string()).unwrap();
        let mut second = [port("81"), port(&format!("127.0.0.1:{free}:80"))];
        let err = claim(dir.path(), "b", "api", &mut second, |o| format!("<{o}>")).unwrap_err();
        assert!(
            err.to_string().contains("container <a> publishes it"),
            "{err}"
        );
        assert_eq!(claims(dir.path()).len(), 1, "all or nothing");
        release(dir.path(), "a").unwrap();
        claim(dir.path(), "b", "api", &mut second, |o| o.to_string()).unwrap();
        assert!(second[0].host_port.is_some(), "a free port was chosen");
        assert_eq!(claims(dir.path()).len(), 2);
    }

    #[test]
    fn a_port_another_program_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().port();
        let mut ports = [port(&format!("127.0.0.1:{taken}:80"))];
        let err = claim(dir.path(), "a", "web", &mut ports, |o| o.to_string()).unwrap_err();
        assert!(err.to_string().contains("another program"), "{err}");
        assert!(claims(dir.path()).is_empty());
    }
}
