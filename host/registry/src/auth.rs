//! Answering a registry's `401`: its `WWW-Authenticate` challenge says how. `Basic` takes the
//! user's password on every request (an htpasswd-protected `registry:2`); `Bearer` sends berth
//! to a token service for a token scoped to the repository, anonymous or as the user (Docker
//! Hub, ghcr.io, Harbor). An identity token is traded there by OAuth2's refresh grant, as
//! `docker pull` does.

use std::collections::HashMap;

use base64::Engine as _;
use berth_core::{Credentials, Error, Result};
use serde::Deserialize;

/// How a registry asked to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    /// `realm` (the token service's URL), and `service` and `scope` when given.
    Bearer(HashMap<String, String>),
}

impl Challenge {
    /// `Basic realm="x"` or `Bearer realm="https://auth",service="registry",scope="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params = HashMap::new();
        let mut rest = rest.trim();
        while let Some((key, after)) = rest.split_once("=\"") {
            let (value, after) = after.split_once('"')?;
            params.insert(key.trim().to_ascii_lowercase(), value.to_string());
            rest = after.trim_start_matches(',').trim();
        }
        params
            .contains_key("realm")
            .then_some(Challenge::Bearer(params))
    }
}

/// Where the answer to a challenge is sent, and whom it is sent as.
pub struct Authenticator<'a> {
    pub agent: &'a ureq::Agent,
    pub registry: &'a str,
    pub credentials: Option<&'a Credentials>,
}

impl Authenticator<'_> {
    /// The `Authorization` header value that answers `challenge`.
    pub fn answer(&self, challenge: &Challenge) -> Result<String> {
        match (challenge, self.credentials) {
            (_, Some(Credentials::RegistryToken(token))) => Ok(format!("Bearer {token}")),
            (Challenge::Basic, Some(Credentials::Password { username, password })) => {
                Ok(basic(username, password))
            }
            (Challenge::Basic, _) => Err(self.refused(
                "it wants a user name and password",
                format!("log in first: `berth login {}`", self.registry),
            )),
            (Challenge::Bearer(params), _) => self.token(params).map(|t| format!("Bearer {t}")),
        }
    }

    /// A token from the service `params` names: anonymous, as the user, or by refresh grant.
    fn token(&self, params: &HashMap<String, String>) -> Result<String> {
        let realm = &params["realm"];
        let param = |key: &str| params.get(key).map(String::as_str);
        let response = match self.credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "berth"),
                ];
                for key in ["service", "scope"] {
                    if let Some(value) = param(key) {
                        form.push((key, value));
                    }
                }
                self.agent.post(realm).send_form(form)
            }
            credentials => {
                let mut request = self.agent.get(realm);
                for key in ["service", "scope"] {
                    if let Some(value) = param(key) {
                        request = request.query(key, value);
                    }
                }
                if let Some(Credentials::Password { username, password }) = credentials {
                    request = request
                        .query("account", username)
                        .header("Authorization", &basic(username, password));
                }
                request.call()
            }
        }
        .map_err(|e| self.unreachable(realm, e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(self.refused(
                    &format!("its token service {realm} said HTTP {}", response.status()),
                    self.fix(),
                ));
            }
            status => {
                return Err(
                    self.unreachable(realm, format!("its token service answered HTTP {status}"))
                );
            }
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_reader(response.into_body().into_reader())
            .map_err(|e| self.unreachable(realm, format!("its token does not parse: {e}")))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.unreachable(realm, "its token service sent no token".into()))
    }

    /// The registry (or its token service) turned down who berth is.
    pub fn refused(&self, reason: &str, hint: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.to_string(),
            who: self.who(),
            reason: reason.to_string(),
            hint,
        }
    }

    /// `an anonymous pull`, `user "alice"`.
    pub fn who(&self) -> String {
        match self.credentials {
            None => "an anonymous request".into(),
            Some(Credentials::Password { username, .. }) => format!("user {username:?}"),
            Some(Credentials::IdentityToken(_)) => "the identity token from `berth login`".into(),
            Some(Credentials::RegistryToken(_)) => "the registry token given".into(),
        }
    }

    /// What the user does about a refusal.
    pub fn fix(&self) -> String {
        match self.credentials {
            None => format!("log in first: `berth login {}`", self.registry),
            Some(_) => format!(
                "check the user name and password, and log in again: `berth login {}`",
                self.registry
            ),
        }
    }

    fn unreachable(&self, endpoint: &str, reason: String) -> Error {
        Error::Unavailable {
            service: format!("the token service of registry {}", self.registry),
            endpoint: endpoint.to_string(),
            reason,
            hint: "is the registry's token service up?".into(),
        }
    }
}

/// `Basic base64(user:password)`.
pub fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let Some(Challenge::Bearer(params)) = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        ) else {
            panic!("a bearer challenge")
        };
        assert_eq!(params["realm"], "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/alpine:pull");
        assert_eq!(
            Challenge::parse(r#"Basic realm="berth-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("bearer service=\"x\""), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        assert_eq!(basic("alice", "s3cret"), "Basic YWxpY2U6czNjcmV0");
    }
}
