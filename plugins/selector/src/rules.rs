//! Placement rules as plain Rust, unit-tested natively.

/// The label a user sets to ask for a backend.
pub const BACKEND_LABEL: &str = "berth.backend";

/// Picks a backend among `candidates` (name, healthy); `Err` is the reason shown to the user.
pub fn select(
    image: &str,
    labels: &[(String, String)],
    rules: Option<&str>,
    candidates: &[(&str, bool)],
) -> Result<String, String> {
    let healthy = |name: &str| candidates.iter().any(|(n, ok)| *n == name && *ok);
    if let Some((_, wanted)) = labels.iter().find(|(k, _)| k == BACKEND_LABEL) {
        return if healthy(wanted) {
            Ok(wanted.clone())
        } else {
            Err(format!(
                "label {BACKEND_LABEL}={wanted} names no healthy backend"
            ))
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
            select("busybox:local", &label, rules, BACKENDS).unwrap(),
            "docker"
        );
        assert_eq!(select("nginx:1", &[], rules, BACKENDS).unwrap(), "docker");
        assert_eq!(
            select("busybox:local", &[], rules, BACKENDS).unwrap(),
            "native"
        );
        assert_eq!(select("alpine", &[], rules, BACKENDS).unwrap(), "native");
    }

    #[test]
    fn refuses_unhealthy_or_unknown_choices() {
        let label = vec![(BACKEND_LABEL.to_string(), "containerd".to_string())];
        assert!(
            select("x", &label, None, BACKENDS)
                .unwrap_err()
                .contains("no healthy backend")
        );
        assert!(
            select("redis", &[], Some("redis=containerd"), BACKENDS)
                .unwrap_err()
                .contains("not healthy")
        );
        assert!(select("x", &[], None, &[("a", false)]).is_err());
        assert!(select("x", &[], Some("oops"), BACKENDS).is_err());
    }
}
