//! Image references, fully qualified as containerd stores them and registries serve them:
//! `alpine` is `docker.io/library/alpine:latest`. A lookup tries the exact name, then the name
//! without `docker.io/library/`, then any stored name ending in `/<name>`, which is how images
//! imported under a short name are still found.

use berth_core::{Error, Result};

/// A reference split into where and what to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The normalised form, e.g. `docker.io/library/alpine:latest`.
    pub name: String,
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/alpine`.
    pub repository: String,
    /// A tag or a `sha256:` digest: what the manifest is fetched by.
    pub object: String,
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference> {
        let invalid = |reason: &str| {
            Error::invalid(format!("image reference {reference:?}"), reason)
                .with_hint("e.g. `alpine`, `alpine:3.19`, `ghcr.io/org/app@sha256:…`")
        };
        if reference.is_empty() || reference.chars().any(|c| c.is_whitespace()) {
            return Err(invalid("it is empty or holds whitespace"));
        }
        let name = normalise(reference);
        let (registry, path) = name
            .split_once('/')
            .expect("normalised names have a registry");
        let (repository, object) = match path.split_once('@') {
            Some((repository, digest)) => (repository, digest),
            None => {
                let slash = path.rfind('/').map_or(0, |i| i + 1);
                let colon = slash
                    + path[slash..]
                        .rfind(':')
                        .expect("normalised names have a tag");
                (&path[..colon], &path[colon + 1..])
            }
        };
        if repository.is_empty() || object.is_empty() || repository != repository.to_lowercase() {
            return Err(invalid(
                "the repository must be lowercase and the tag non-empty",
            ));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            object: object.to_string(),
            name,
        })
    }

    /// The registry's base URL: Docker Hub's API host for `docker.io`, plain HTTP for a
    /// loopback registry (as docker treats 127.0.0.0/8), HTTPS for every other.
    pub fn base_url(&self) -> String {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        if self.registry == "docker.io" {
            "https://registry-1.docker.io".into()
        } else if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
            format!("http://{}", self.registry)
        } else {
            format!("https://{}", self.registry)
        }
    }
}

/// Registry-qualified form: `alpine` -> `docker.io/library/alpine:latest`, `user/img` ->
/// `docker.io/user/img:latest`; a first component with a '.' or ':' or `localhost` is a
/// registry and stays (`ghcr.io/x/y`, `localhost/x`, `host:5000/x`). A digest or tag is kept.
pub fn normalise(reference: &str) -> String {
    let (first, rest) = match reference.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (reference, None),
    };
    let qualified = match rest {
        Some(_) if first.contains(['.', ':']) || first == "localhost" => reference.to_string(),
        Some(_) => format!("docker.io/{reference}"),
        None => format!("docker.io/library/{reference}"),
    };
    if has_tag_or_digest(&qualified) {
        qualified
    } else {
        format!("{qualified}:latest")
    }
}

fn has_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') || last.contains('@')
}

/// Which of `stored` names `reference` means, in lookup order: exact (as given or
/// normalised), then without `docker.io/library/`, then by `/<reference>` suffix.
pub fn find<'a>(reference: &str, stored: &'a [String]) -> Option<&'a String> {
    let with_tag = if has_tag_or_digest(reference) {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    };
    let normalised = normalise(reference);
    let short = normalised.strip_prefix("docker.io/library/");
    stored
        .iter()
        .find(|s| **s == reference || **s == with_tag || **s == normalised)
        .or_else(|| short.and_then(|short| stored.iter().find(|s| *s == short)))
        .or_else(|| {
            let suffix = format!("/{with_tag}");
            stored.iter().find(|s| s.ends_with(&suffix))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_qualified_as_containerd_stores_them() {
        for (given, stored) in [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("user/img", "docker.io/user/img:latest"),
            ("ghcr.io/x/y", "ghcr.io/x/y:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("host:5000/x", "host:5000/x:latest"),
            ("host:5000/x:1", "host:5000/x:1"),
            ("alpine@sha256:0123", "docker.io/library/alpine@sha256:0123"),
        ] {
            assert_eq!(normalise(given), stored, "{given}");
        }
    }

    #[test]
    fn references_split_into_registry_repository_and_tag_or_digest() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.object.as_str()
            ),
            ("docker.io", "library/alpine", "latest")
        );
        assert_eq!(r.base_url(), "https://registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.object.as_str()
            ),
            ("127.0.0.1:5000", "team/app", "1.2")
        );
        assert_eq!(r.base_url(), "http://127.0.0.1:5000");
        let r = Reference::parse("ghcr.io/x/y@sha256:abcd").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.object.as_str()),
            ("x/y", "sha256:abcd")
        );
        assert_eq!(r.base_url(), "https://ghcr.io");
        assert_eq!(
            Reference::parse("localhost:5000/x").unwrap().base_url(),
            "http://localhost:5000"
        );
        for bad in ["", "a b", "Upper/Case", "x:"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lookup_is_exact_then_short_then_by_suffix() {
        let stored = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let names = stored(&["docker.io/library/busybox:latest", "busybox:latest"]);
        assert_eq!(
            find("busybox", &names).unwrap(),
            "docker.io/library/busybox:latest"
        );
        let names = stored(&["busybox:local"]);
        assert_eq!(find("busybox:local", &names).unwrap(), "busybox:local");
        assert_eq!(
            find("docker.io/library/busybox:local", &names).unwrap(),
            "busybox:local"
        );
        let names = stored(&["registry.local:5000/team/busybox:local"]);
        assert_eq!(find("busybox:local", &names), Some(&names[0]));
        assert_eq!(find("team/busybox:local", &names), Some(&names[0]));
        assert!(find("box:local", &names).is_none());
        assert!(find("busybox:other", &names).is_none());
    }
}
