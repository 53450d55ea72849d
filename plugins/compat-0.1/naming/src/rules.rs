//! The naming rules as plain Rust, so they are unit-tested natively (`cargo test`) and the
//! component glue in `lib.rs` stays a thin adapter.

use regex_lite::Regex;

/// A DNS label (RFC 1123): what every backend and most tooling accept as a container name.
/// The default rule checks it by hand; the tests hold the two to the same answers.
#[cfg(test)]
pub const DNS_LABEL: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";

/// Length bounds of the default rule; one- and two-letter names are too easy to collide on.
pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 63;

/// Labels `generate` reads the app id and the replica number from.
pub const APP_LABEL: &str = "berth.app-id";
pub const REPLICA_LABEL: &str = "berth.replica-id";

/// A name rule: a custom `pattern`, or the default DNS-label rule with length bounds.
pub enum Rule {
    /// Checked by hand: compiling the DNS-label regex's `{0,61}` costs more than the whole
    /// rest of a decision, and the rule is simple enough to state directly.
    DnsLabel,
    Custom(Regex),
}

impl Rule {
    /// `pattern` from the plugin settings; `None` selects the default DNS-label rule.
    pub fn new(pattern: Option<&str>) -> Result<Rule, String> {
        match pattern {
            None => Ok(Rule::DnsLabel),
            Some(source) => Regex::new(source)
                .map(Rule::Custom)
                .map_err(|e| format!("setting `pattern` {source:?} is not a valid regex: {e}")),
        }
    }

    /// Whether `name` is a DNS label: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
    fn is_dns_label(name: &str) -> bool {
        let bytes = name.as_bytes();
        let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        (1..=MAX_LEN).contains(&bytes.len())
            && bytes.iter().all(inner)
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    }

    pub fn validate(&self, kind: &str, name: &str) -> Result<(), String> {
        match self {
            Rule::Custom(regex) if regex.is_match(name) => Ok(()),
            Rule::Custom(regex) => Err(format!(
                "{kind} name {name:?} does not match {}",
                regex.as_str()
            )),
            Rule::DnsLabel if !(MIN_LEN..=MAX_LEN).contains(&name.len()) => Err(format!(
                "{kind} name {name:?} must be {MIN_LEN} to {MAX_LEN} characters long, not {}",
                name.len()
            )),
            Rule::DnsLabel if Self::is_dns_label(name) => Ok(()),
            Rule::DnsLabel => Err(format!(
                "{kind} name {name:?} is not a DNS label: use lowercase letters, digits and '-', \
                 starting and ending with a letter or digit"
            )),
        }
    }
}

/// `app-{app-id}-{replica:04x}` from the spec's labels; `Ok(None)` when neither label is set.
pub fn generate(labels: &[(String, String)]) -> Result<Option<String>, String> {
    let get = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let (app, replica) = match (get(APP_LABEL), get(REPLICA_LABEL)) {
        (None, None) => return Ok(None),
        (Some(app), Some(replica)) => (app, replica),
        (Some(_), None) => {
            return Err(format!(
                "label {APP_LABEL} is set but {REPLICA_LABEL} is not"
            ));
        }
        (None, Some(_)) => {
            return Err(format!(
                "label {REPLICA_LABEL} is set but {APP_LABEL} is not"
            ));
        }
    };
    if app.is_empty()
        || !app
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(format!(
            "label {APP_LABEL}={app:?} must be lowercase hex digits"
        ));
    }
    let number = match replica.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => replica.parse::<u64>(),
    }
    .map_err(|_| format!("label {REPLICA_LABEL}={replica:?} is not a number"))?;
    // Four hex digits is part of the name format; a fifth would silently break the pattern.
    if number >= 0x10000 {
        return Err(format!(
            "label {REPLICA_LABEL}={replica} is out of range: replica ids must be below 65536 (0x10000)"
        ));
    }
    Ok(Some(format!("app-{app}-{number:04x}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_accepts_dns_labels() {
        let rule = Rule::new(None).unwrap();
        let long = "a".repeat(63);
        for name in [
            "myapp",
            "my-app",
            "3rd-app",
            "app1-prod",
            "abc",
            &long,
            "my-app-prod-01",
            "node123",
            "123",
        ] {
            assert!(
                rule.validate("container", name).is_ok(),
                "{name:?} should be valid"
            );
        }
    }

    #[test]
    fn default_rule_refuses_everything_else_with_a_reason() {
        let rule = Rule::new(None).unwrap();
        let long = "a".repeat(64);
        for name in [
            "", "a", "ab", &long, "-app", "app-", "my_app", "my app", "my.app", "my@app", "MyApp",
            "---", "-myapp",
        ] {
            let reason = rule.validate("container", name).unwrap_err();
            assert!(reason.contains(&format!("{name:?}")), "{reason}");
        }
    }

    #[test]
    fn the_hand_written_dns_check_agrees_with_the_regex() {
        let regex = Regex::new(DNS_LABEL).unwrap();
        let mut names: Vec<String> = [
            "", "a", "-", "a-", "-a", "a-b", "0", "09", "a--b", "A", "é", "a.b", "a_b", " a",
        ]
        .map(String::from)
        .into();
        names.extend([62, 63, 64].map(|n| "x".repeat(n)));
        names.push(format!("a{}b", "-".repeat(61)));
        for name in &names {
            assert_eq!(Rule::is_dns_label(name), regex.is_match(name), "{name:?}");
        }
    }

    #[test]
    fn custom_pattern_replaces_the_default() {
        let rule = Rule::new(Some("^app-[a-f0-9]{8,16}-[0-9a-f]{4}$")).unwrap();
        assert!(rule.validate("container", "app-0123abcd-00ff").is_ok());
        assert!(
            rule.validate("container", "myapp")
                .unwrap_err()
                .contains("does not match")
        );
        assert!(Rule::new(Some("(")).is_err());
    }

    #[test]
    fn generates_from_labels() {
        let labels = |a: &str, r: &str| {
            vec![
                (APP_LABEL.to_string(), a.to_string()),
                (REPLICA_LABEL.to_string(), r.to_string()),
            ]
        };
        assert_eq!(
            generate(&labels("0123abcd", "15")).unwrap().unwrap(),
            "app-0123abcd-000f"
        );
        assert_eq!(
            generate(&labels("0123abcd", "0xffff")).unwrap().unwrap(),
            "app-0123abcd-ffff"
        );
        assert!(
            generate(&labels("0123abcd", "65536"))
                .unwrap_err()
                .contains("below 65536")
        );
        assert!(generate(&labels("XYZ", "1")).is_err());
        assert_eq!(generate(&[]).unwrap(), None);
        assert!(generate(&[(APP_LABEL.into(), "ab".into())]).is_err());
    }
}
