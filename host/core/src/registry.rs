//! What a pull needs to reach one registry: how to connect to it and who to be there. The
//! engine resolves it from `[registries]` and the user's docker credentials; a backend that
//! fetches by itself uses all of it, the Docker daemon only the credentials (its own
//! `daemon.json` and `/etc/docker/certs.d` say how it connects).

use std::path::PathBuf;

/// Who a pull is made as.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or access token): sent as basic auth, or traded for a bearer
    /// token at the registry's token service.
    Password { username: String, password: String },
    /// An OAuth2 refresh token a registry's login handed out (docker's `identitytoken`).
    IdentityToken(String),
    /// A bearer token for the registry itself (the CRI's `registry_token`).
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { username, .. } => write!(f, "Password({username:?}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(***)"),
        }
    }
}

/// How a registry is spoken to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// TLS, verified against the platform's roots, or only against `ca` when it is given.
    Https { ca: Option<PathBuf> },
    /// Plain HTTP: loopback registries by default (as docker treats 127.0.0.0/8), and any
    /// registry `[registries."HOST"] insecure = true` names.
    Http,
}

/// One registry, ready to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    /// As a reference names it: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The host pulls of `registry` are made from instead (`[registries."HOST"] mirror`, as
    /// containerd's registry mirrors): same repositories, images keep their names.
    pub mirror: Option<String>,
    /// How the host contacted (the mirror, when there is one) is spoken to.
    pub transport: Transport,
    /// None pulls anonymously.
    pub credentials: Option<Credentials>,
}

impl RegistryAccess {
    /// Anonymous, with the default transport for `registry`.
    pub fn anonymous(registry: &str) -> RegistryAccess {
        RegistryAccess {
            registry: registry.to_string(),
            mirror: None,
            transport: default_transport(registry),
            credentials: None,
        }
    }

    /// The host a pull contacts: the mirror, else the registry.
    pub fn host(&self) -> &str {
        self.mirror.as_deref().unwrap_or(&self.registry)
    }
}

/// Plain HTTP for a loopback registry, TLS for every other.
pub fn default_transport(registry: &str) -> Transport {
    if is_loopback(registry) {
        Transport::Http
    } else {
        Transport::Https { ca: None }
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http_by_default() {
        for loopback in ["localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:80"] {
            assert_eq!(default_transport(loopback), Transport::Http, "{loopback}");
        }
        for remote in ["docker.io", "ghcr.io", "10.0.0.1:5000", "127example.com"] {
            assert_eq!(
                default_transport(remote),
                Transport::Https { ca: None },
                "{remote}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let password = Credentials::Password {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        assert_eq!(format!("{password:?}"), r#"Password("alice", ***)"#);
        let token = format!("{:?}", Credentials::IdentityToken("t0ken".into()));
        assert!(!token.contains("t0ken"));
    }
}
