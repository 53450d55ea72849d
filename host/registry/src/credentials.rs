//! The user's registry credentials where docker keeps them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`. Its `auths` hold `base64(user:password)` (or an identity token) per
//! registry; `credHelpers` (per registry) and `credsStore` (for all) name a credential helper
//! `docker-credential-NAME` that keeps them instead, spoken to by docker's protocol (`get`,
//! `store` and `erase`, the server on stdin, JSON back). `berth login` and `docker login`
//! share the file, so either one logs the other in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use berth_core::{Credentials, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Docker Hub's key in `auths`, as `docker login` writes it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// One user's docker config file (which need not exist yet).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

/// Where `store` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    File(PathBuf),
    Helper(String),
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn locate() -> DockerConfig {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                PathBuf::from(home).join(".docker")
            });
        DockerConfig::at(&dir)
    }

    /// The `config.json` in `dir`.
    pub fn at(dir: &Path) -> DockerConfig {
        DockerConfig {
            path: dir.join("config.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credentials kept for `registry` (`docker.io`, `127.0.0.1:5000`), if any.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        let file = self.read()?;
        if let Some(helper) = file.helper_for(registry) {
            return self.helper(&helper).get(&server_key(registry));
        }
        let Some((key, entry)) = file
            .auths
            .iter()
            .find(|(key, _)| same_registry(key, registry))
        else {
            return Ok(None);
        };
        entry
            .credentials()
            .map_err(|message| self.corrupt(&format!("auths.{key:?}: {message}")))
    }

    /// Keeps `username` and `password` for `registry`: in its helper when one is named, else in
    /// `auths`. The file is replaced whole (written beside it, then renamed), so a crash leaves
    /// the old one or the new one, and every key berth does not know is kept.
    pub fn store(&self, registry: &str, username: &str, password: &str) -> Result<Stored> {
        let key = server_key(registry);
        let mut document = self.document()?;
        let helper = Self::parse(&document, &self.path)?.helper_for(registry);
        let entry = match &helper {
            Some(name) => {
                self.helper(name).store(&key, username, password)?;
                Value::Object(Map::new())
            }
            None => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                serde_json::json!({ "auth": auth })
            }
        };
        let auths = document
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(auths) = auths else {
            return Err(self.corrupt("`auths` is not an object"));
        };
        auths.retain(|k, _| !same_registry(k, registry));
        auths.insert(key, entry);
        self.write(&document)?;
        Ok(helper.map_or_else(|| Stored::File(self.path.clone()), Stored::Helper))
    }

    /// Forgets `registry`'s credentials; false when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut document = self.document()?;
        let helper = Self::parse(&document, &self.path)?.helper_for(registry);
        let mut erased = false;
        if let Some(name) = helper {
            erased = self.helper(&name).erase(&server_key(registry))?;
        }
        if let Some(Value::Object(auths)) = document.get_mut("auths") {
            let before = auths.len();
            auths.retain(|k, _| !same_registry(k, registry));
            if auths.len() != before {
                erased = true;
                self.write(&document)?;
            }
        }
        Ok(erased)
    }

    fn read(&self) -> Result<File> {
        Self::parse(&self.document()?, &self.path)
    }

    /// The file as JSON; an absent file is an empty object.
    fn document(&self) -> Result<Map<String, Value>> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
        };
        serde_json::from_slice(&text).map_err(|e| self.corrupt(&e.to_string()))
    }

    fn parse(document: &Map<String, Value>, path: &Path) -> Result<File> {
        serde_json::from_value(Value::Object(document.clone())).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: format!("{e} (fix or remove the file, then `berth login` again)"),
        })
    }

    fn write(&self, document: &Map<String, Value>) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let context = |what: &str| format!("{what} {}", self.path.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(context("creating the directory of"), e))?;
        let staged = dir.join(format!(".config.json.{}", std::process::id()));
        let mut text = serde_json::to_vec_pretty(document).expect("JSON serialises");
        text.push(b'\n');
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)
            .and_then(|mut file| {
                file.write_all(&text)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&staged, &self.path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&staged);
            Error::io(context("writing"), e)
        })
    }

    fn helper(&self, name: &str) -> Helper {
        Helper {
            program: format!("docker-credential-{name}"),
            config: self.path.clone(),
        }
    }

    fn corrupt(&self, message: &str) -> Error {
        Error::Config {
            path: self.path.display().to_string(),
            message: format!("{message} (fix or remove the file, then `berth login` again)"),
        }
    }
}

/// The parts of the file berth reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

impl File {
    fn helper_for(&self, registry: &str) -> Option<String> {
        self.cred_helpers
            .iter()
            .find(|(key, _)| same_registry(key, registry))
            .map(|(_, helper)| helper.clone())
            .or_else(|| self.creds_store.clone())
            .filter(|helper| !helper.is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl Entry {
    fn credentials(&self) -> std::result::Result<Option<Credentials>, String> {
        if let Some(token) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::IdentityToken(token.clone())));
        }
        if let Some(auth) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            return decode_auth(auth)
                .map(Some)
                .ok_or_else(|| "`auth` is not base64 of user:password".into());
        }
        Ok(match (&self.username, &self.password) {
            (Some(username), Some(password)) => Some(password_credentials(username, password)),
            _ => None,
        })
    }
}

/// An `auth` field (docker's, and the CRI's): `base64(user:password)`.
pub fn decode_auth(auth: &str) -> Option<Credentials> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    let (username, password) = decoded.split_once(':')?;
    Some(password_credentials(username, password))
}

/// Docker's convention: the user name `<token>` marks the secret as an identity token.
fn password_credentials(username: &str, secret: &str) -> Credentials {
    if username == "<token>" {
        Credentials::IdentityToken(secret.to_string())
    } else {
        Credentials::Password {
            username: username.to_string(),
            password: secret.to_string(),
        }
    }
}

/// `docker-credential-NAME`, run once per request.
struct Helper {
    program: String,
    config: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperCredentials {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    username: String,
    secret: String,
}

impl Helper {
    fn get(&self, server: &str) -> Result<Option<Credentials>> {
        let output = self.run("get", server.as_bytes())?;
        if !output.status.success() {
            // The helpers' own words for "nothing stored" (docker-credential-helpers).
            let said = String::from_utf8_lossy(&output.stdout);
            if said.contains("credentials not found") {
                return Ok(None);
            }
            return Err(self.failed("get", &output));
        }
        let answer: HelperCredentials = serde_json::from_slice(&output.stdout)
            .map_err(|e| self.error("get", format!("its answer does not parse: {e}")))?;
        Ok(Some(password_credentials(&answer.username, &answer.secret)))
    }

    fn store(&self, server: &str, username: &str, secret: &str) -> Result<()> {
        let input = serde_json::to_vec(&HelperCredentials {
            server_url: server.to_string(),
            username: username.to_string(),
            secret: secret.to_string(),
        })
        .expect("JSON serialises");
        let output = self.run("store", &input)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(self.failed("store", &output))
        }
    }

    fn erase(&self, server: &str) -> Result<bool> {
        let output = self.run("erase", server.as_bytes())?;
        if output.status.success() {
            return Ok(true);
        }
        if String::from_utf8_lossy(&output.stdout).contains("credentials not found") {
            return Ok(false);
        }
        Err(self.failed("erase", &output))
    }

    fn run(&self, verb: &str, input: &[u8]) -> Result<std::process::Output> {
        let mut child = Command::new(&self.program)
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.error(
                    verb,
                    format!("it cannot be run ({e}); install it, or remove it from the file"),
                )
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A helper that exits without reading its input is answered by its exit status.
        let _ = stdin.write_all(input);
        drop(stdin);
        child
            .wait_with_output()
            .map_err(|e| self.error(verb, e.to_string()))
    }

    fn failed(&self, verb: &str, output: &std::process::Output) -> Error {
        let said = [&output.stdout, &output.stderr]
            .map(|s| String::from_utf8_lossy(s).trim().to_string())
            .join(" ");
        self.error(
            verb,
            format!("it failed ({}): {}", output.status, said.trim()),
        )
    }

    fn error(&self, verb: &str, message: String) -> Error {
        Error::Config {
            path: self.config.display().to_string(),
            message: format!("credential helper {} {verb}: {message}", self.program),
        }
    }
}

/// The user's credentials for the registry of image `reference`, if they logged in to it.
pub fn logged_in(reference: &str) -> Result<Option<Credentials>> {
    let reference = berth_oci::Reference::parse(reference)?;
    DockerConfig::locate().lookup(&reference.registry)
}

/// The key docker files `registry` under: Docker Hub's legacy URL, else the host as named.
pub fn server_key(registry: &str) -> String {
    if registry_name(registry) == "docker.io" {
        DOCKER_HUB_KEY.into()
    } else {
        registry.to_string()
    }
}

/// Whether a key of the file (`https://ghcr.io`, `ghcr.io/v2/`, Docker Hub's URL) names
/// `registry`.
fn same_registry(key: &str, registry: &str) -> bool {
    registry_name(key) == registry_name(registry)
}

/// A registry as a reference names it, from how a user or a file may spell it
/// (`https://ghcr.io`, `index.docker.io`, `ghcr.io/v2/`): without scheme or path, Docker
/// Hub's aliases folded into `docker.io`.
pub fn registry_name(name: &str) -> &str {
    let name = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    let host = name.split('/').next().unwrap_or(name);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        host => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Credentials {
        Credentials::Password {
            username: "alice".into(),
            password: "s3:cret".into(),
        }
    }

    #[test]
    fn stored_credentials_are_found_under_any_spelling_of_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::at(&dir.path().join("docker"));
        assert_eq!(config.lookup("docker.io").unwrap(), None, "no file yet");
        assert_eq!(
            config.store("docker.io", "alice", "s3:cret").unwrap(),
            Stored::File(config.path().to_path_buf())
        );
        config.store("127.0.0.1:5000", "bob", "pw").unwrap();
        assert_eq!(config.lookup("docker.io").unwrap(), Some(alice()));
        assert!(matches!(
            config.lookup("127.0.0.1:5000").unwrap(),
            Some(Credentials::Password { username, .. }) if username == "bob"
        ));
        assert_eq!(config.lookup("ghcr.io").unwrap(), None);
        let text = std::fs::read_to_string(config.path()).unwrap();
        assert!(text.contains(DOCKER_HUB_KEY), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads it");

        assert!(config.erase("index.docker.io").unwrap());
        assert!(!config.erase("docker.io").unwrap(), "nothing left to erase");
        assert_eq!(config.lookup("docker.io").unwrap(), None);
        assert!(config.lookup("127.0.0.1:5000").unwrap().is_some());
    }

    #[test]
    fn what_docker_wrote_is_read_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::at(dir.path());
        std::fs::write(
            config.path(),
            r#"{"auths":{"https://ghcr.io/v2/":{"username":"carol","password":"pat"},
                "quay.io":{"identitytoken":"refresh-me"}},
                "detachKeys":"ctrl-e,e","proxies":{"default":{}}}"#,
        )
        .unwrap();
        assert!(matches!(
            config.lookup("ghcr.io").unwrap(),
            Some(Credentials::Password { username, password }) if username == "carol" && password == "pat"
        ));
        assert_eq!(
            config.lookup("quay.io").unwrap(),
            Some(Credentials::IdentityToken("refresh-me".into()))
        );
        config.store("ghcr.io", "carol", "new").unwrap();
        let kept: Value = serde_json::from_slice(&std::fs::read(config.path()).unwrap()).unwrap();
        assert_eq!(kept["detachKeys"], "ctrl-e,e");
        assert!(kept["proxies"]["default"].is_object());
        assert_eq!(kept["auths"].as_object().unwrap().len(), 2, "{kept}");
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::at(dir.path());
        std::fs::write(config.path(), "{not json").unwrap();
        let err = config.lookup("docker.io").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(config.path(), r#"{"auths":{"x.io":{"auth":"!!!"}}}"#).unwrap();
        let err = config.lookup("x.io").unwrap_err().to_string();
        assert!(err.contains("not base64"), "{err}");
    }

    #[test]
    fn a_missing_helper_is_an_error_naming_it_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::at(dir.path());
        std::fs::write(config.path(), r#"{"credsStore":"berth-absent"}"#).unwrap();
        let err = config.lookup("docker.io").unwrap_err().to_string();
        assert!(err.contains("docker-credential-berth-absent"), "{err}");
        assert!(err.contains("install it"), "{err}");
    }
}
