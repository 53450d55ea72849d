//! Placement rules as plain Rust, unit-tested natively.

/// The label a user sets to ask for a backend.
pub const BACKEND_LABEL: &str = "berth.backend";

/// Picks a backend among `candidates` (name, healthy) for an image whose user may have asked
/// for one (`requested`, from `--backend`); `Err` is the reason shown to the user.
pub fn select(
    image: &str,
    labels: &[(String, String)],
    requested: Option<&str>,
    rules: Option<&str>,
    candidates: &[(&str, bool)],
) -> Result<String, String> {
    let healthy = |name: &str| candidates.iter().any(|(n, ok)| *n == name && *ok);
    let label = labels
        .iter()
        .find(|(k, _)| k == BACKEND_LABEL)
        .map(|(_, v)| v.as_str());
    let (wanted, source) = match (label, requested) {
        (Some(l), Some(r)) if l != r => {
            return Err(format!(
                "--backend {r} contradicts label {BACKEND_LABEL}={l}"
            ));
        }
        (Some(l), _) => (Some(l), format!("label {BACKEND_LABEL}={l}")),
        (None, Some(r)) => (Some(r), format!("--backend {r}")),
        (None, None) => (None, String::new()),
    };
    if let Some(wanted) = wanted {
        return if healthy(wanted) {
            Ok(wanted.to_string())
        } else {
            Err(format!("{source} names no healthy backend"))
        };
    }
    for rule in rules
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let (glob, backend) = rule
            .split_once('=')
            .ok_or_else(|| format!("setting `rules`: {rule:?} is not IMAGE-GLOB=BACKEND"))?;
        if matches(glob.trim(), image) {
            let backend = backend.trim();
            return if healthy(backend) {
                Ok(backend.to_string())
            } else {
                Err(format!(
                    "image {image} must run on backend {backend} (rule {rule:?}), which is not healthy"
                ))
            };
        }
    }
    candidates
        .iter()
        .find(|(_, ok)| *ok)
        .map(|(name, _)| name.to_string())
        .ok_or_else(|| "no healthy backend".to_string())
}

/// `prefix*` matches by prefix; anything else must match exactly.
fn matches(glob: &str, image: &str) -> bool {
    match glob.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => glob == image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKENDS: &[(&str, bool)] = &[("native", true), ("docker", true), ("containerd", false)];

    #[test]
    fn label_then_rules_then_first_healthy() {
        let label = vec![(BACKEND_LABEL.to_string(), "docker".to_string())];
        let rules = Some("busybox*=native, nginx*=docker");
        assert_eq!(
            select("busybox:local", &label, None, rules, BACKENDS).unwrap(),
            "docker"
        );
        assert_eq!(
            select("nginx:1", &[], None, rules, BACKENDS).unwrap(),
            "docker"
        );
        assert_eq!(
            select("busybox:local", &[], None, rules, BACKENDS).unwrap(),
            "native"
        );
        assert_eq!(
            select("alpine", &[], None, rules, BACKENDS).unwrap(),
            "native"
        );
    }

    #[test]
    fn a_requested_backend_is_honoured_or_refused() {
        let rules = Some("busybox*=native");
        assert_eq!(
            select("busybox:local", &[], Some("docker"), rules, BACKENDS).unwrap(),
            "docker"
        );
        assert!(
            select("x", &[], Some("containerd"), None, BACKENDS)
                .unwrap_err()
                .contains("--backend containerd names no healthy backend")
        );
        let label = vec![(BACKEND_LABEL.to_string(), "docker".to_string())];
        assert!(
            select("x", &label, Some("native"), None, BACKENDS)
                .unwrap_err()
                .contains("contradicts")
        );
        assert_eq!(
            select("x", &label, Some("docker"), None, BACKENDS).unwrap(),
            "docker"
        );
    }

    #[test]
    fn refuses_unhealthy_or_unknown_choices() {
        let label = vec![(BACKEND_LABEL.to_string(), "containerd".to_string())];
        assert!(
            select("x", &label, None, None, BACKENDS)
                .unwrap_err()
                .contains("no healthy backend")
        );
        assert!(
            select("redis", &[], None, Some("redis=containerd"), BACKENDS)
                .unwrap_err()
                .contains("not healthy")
        );
        assert!(select("x", &[], None, None, &[("a", false)]).is_err());
        assert!(select("x", &[], None, Some("oops"), BACKENDS).is_err());
    }
}
