//! Image references as containerd stores them: fully qualified, so `alpine` is
//! `docker.io/library/alpine:latest`. A lookup tries the exact name, then the name without
//! `docker.io/library/`, then any stored name ending in `/<name>`, which is how images imported
//! under a short name are still found.

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
