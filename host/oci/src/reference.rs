//! Image references and the one rule that normalises them (Memoh's, which is how containerd
//! stores names and registries serve them): `alpine` is `docker.io/library/alpine:latest`,
//! `user/img` is `docker.io/user/img:latest`, and a first component with a `.` or a `:`, or
//! equal to `localhost`, is a registry and stays. Every backend stores names in this form.
//!
//! A lookup among stored names tries the exact name, then its short form (without
//! `docker.io/library/`, as names were stored before this rule), then any stored name ending in
//! `/<name>`, which is how an image imported under a registry's name is still found by its
//! short one.

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
    /// Checks and normalises `reference`.
    pub fn parse(reference: &str) -> Result<Reference> {
        let invalid = |reason: &str| {
            Error::invalid(format!("image reference {reference:?}"), reason)
                .with_hint("e.g. `alpine`, `alpine:3.19`, `ghcr.io/org/app@sha256:…`")
        };
        if reference.is_empty() {
            return Err(invalid("it is empty"));
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("it holds whitespace or control characters"));
        }
        let name = qualify(reference);
        let (registry, path) = name
            .split_once('/')
            .expect("qualified names have a registry");
        let (repository, object) = match path.split_once('@') {
            // `name:tag@digest`: the digest says what is fetched.
            Some((named, digest)) => (strip_tag(named), digest),
            None => {
                let slash = path.rfind('/').map_or(0, |i| i + 1);
                let colon = slash
                    + path[slash..]
                        .rfind(':')
                        .expect("qualified names have a tag");
                (&path[..colon], &path[colon + 1..])
            }
        };
        if repository.split('/').any(str::is_empty) {
            return Err(invalid("it has no repository name"));
        }
        if object.is_empty() {
            return Err(invalid("its tag or digest is empty"));
        }
        if repository != repository.to_lowercase() {
            return Err(invalid("the repository name must be lowercase"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            object: object.to_string(),
            name,
        })
    }
}

/// The host `registry`'s API answers on: Docker Hub's API host for `docker.io`, the registry as
/// named for every other.
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// The stored form of `reference` (see the module docs); refuses what cannot be an image name.
pub fn normalise(reference: &str) -> Result<String> {
    Reference::parse(reference).map(|r| r.name)
}

/// Registry-qualified and tagged, unchecked.
fn qualify(reference: &str) -> String {
    let qualified = match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            reference.to_string()
        }
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

/// `library/alpine:3` -> `library/alpine`.
fn strip_tag(path: &str) -> &str {
    let slash = path.rfind('/').map_or(0, |i| i + 1);
    path[slash..]
        .rfind(':')
        .map_or(path, |colon| &path[..slash + colon])
}

/// Which of the `stored` names `reference` means, in lookup order: exact (as given or
/// normalised), then the short form (without `docker.io/library/`, or `docker.io/` for a user's
/// image), then by `/<reference>` suffix.
pub fn find<'a>(reference: &str, stored: &'a [String]) -> Option<&'a String> {
    let with_tag = if has_tag_or_digest(reference) {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    };
    let normalised = normalise(reference).ok();
    let short = normalised.as_deref().and_then(|n| {
        n.strip_prefix("docker.io/library/")
            .or_else(|| n.strip_prefix("docker.io/"))
    });
    stored
        .iter()
        .find(|s| **s == reference || Some(s.as_str()) == normalised.as_deref())
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
    fn names_normalise_by_one_rule() {
        for (given, stored) in [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("docker.io/library/alpine:3", "docker.io/library/alpine:3"),
            ("user/img", "docker.io/user/img:latest"),
            ("docker.io/user/img", "docker.io/user/img:latest"),
            ("ghcr.io/x/y", "ghcr.io/x/y:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("host:5000/x", "host:5000/x:latest"),
            ("host:5000/x:1", "host:5000/x:1"),
            ("127.0.0.1:5000/team/app:2", "127.0.0.1:5000/team/app:2"),
            ("alpine@sha256:0123", "docker.io/library/alpine@sha256:0123"),
        ] {
            assert_eq!(normalise(given).unwrap(), stored, "{given}");
        }
        for bad in [
            "",
            "a b",
            "tab\there",
            "Upper/Case",
            "x:",
            "a//b",
            "/x",
            "x/",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_split_into_registry_repository_and_tag_or_digest() {
        let parts = |r: &Reference| (r.registry.clone(), r.repository.clone(), r.object.clone());
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(
            parts(&r),
            ("docker.io".into(), "library/alpine".into(), "latest".into())
        );
        assert_eq!(api_host(&r.registry), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/team/app:1.2").unwrap();
        assert_eq!(
            parts(&r),
            ("127.0.0.1:5000".into(), "team/app".into(), "1.2".into())
        );
        assert_eq!(api_host(&r.registry), "127.0.0.1:5000");
        let r = Reference::parse("ghcr.io/x/y@sha256:abcd").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.object.as_str()),
            ("x/y", "sha256:abcd")
        );
        assert_eq!(api_host(&r.registry), "ghcr.io");
        // A tag beside a digest: the digest is what is fetched.
        let r = Reference::parse("ghcr.io/x/y:1@sha256:abcd").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.object.as_str()),
            ("x/y", "sha256:abcd")
        );
    }

    #[test]
    fn lookup_is_exact_then_short_then_by_suffix() {
        let stored = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // All three kinds of match present: each step wins over the next.
        let mut names = stored(&[
            "registry.local:5000/busybox:latest",
            "busybox:latest",
            "docker.io/library/busybox:latest",
        ]);
        for reference in ["busybox", "docker.io/library/busybox"] {
            assert_eq!(
                find(reference, &names).unwrap(),
                "docker.io/library/busybox:latest",
                "{reference}"
            );
        }
        // A stored name exactly as given is an exact match too.
        assert_eq!(find("busybox:latest", &names).unwrap(), "busybox:latest");
        names.pop();
        assert_eq!(find("busybox", &names).unwrap(), "busybox:latest");
        assert_eq!(
            find("docker.io/library/busybox:latest", &names).unwrap(),
            "busybox:latest"
        );
        names.pop();
        assert_eq!(
            find("busybox", &names).unwrap(),
            "registry.local:5000/busybox:latest"
        );

        // A user's image stored short (`user/img:1`) is found by its full name too.
        let names = stored(&["user/img:1"]);
        assert_eq!(find("docker.io/user/img:1", &names).unwrap(), "user/img:1");

        let names = stored(&["registry.local:5000/team/busybox:local"]);
        assert_eq!(find("busybox:local", &names), Some(&names[0]));
        assert_eq!(find("team/busybox:local", &names), Some(&names[0]));
        assert!(find("box:local", &names).is_none());
        assert!(find("busybox:other", &names).is_none());
        assert!(find("", &names).is_none());
    }
}
