//! `berth login|logout`, as docker's: the user and password from flags, stdin or a prompt on
//! the terminal; checked with the registry before they are kept.

use std::io::{BufRead, IsTerminal, Write};

use berth_core::Error;
use berth_engine::Engine;
use berth_registry::credentials::Stored;

use crate::output;

/// Where the password comes from.
pub enum Secret {
    Given(String),
    Stdin,
    Prompt,
}

impl Secret {
    pub fn of(password: Option<String>, from_stdin: bool) -> Secret {
        match (password, from_stdin) {
            (Some(password), _) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                Secret::Given(password)
            }
            (None, true) => Secret::Stdin,
            (None, false) => Secret::Prompt,
        }
    }
}

pub async fn login(
    engine: &Engine,
    server: &str,
    username: Option<String>,
    secret: Secret,
    json: bool,
) -> anyhow::Result<i32> {
    let username = match username {
        Some(username) => username,
        None if !matches!(secret, Secret::Stdin) && std::io::stdin().is_terminal() => {
            prompt("Username: ")?.trim().to_string()
        }
        None => {
            return Err(Error::invalid("login", "no user name given")
                .with_hint("give one: `berth login -u USER --password-stdin SERVER`")
                .into());
        }
    };
    let password = match secret {
        Secret::Given(password) => password,
        Secret::Stdin => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            password.trim_end_matches(['\n', '\r']).to_string()
        }
        Secret::Prompt if std::io::stdin().is_terminal() => prompt_hidden("Password: ")?,
        Secret::Prompt => {
            return Err(
                Error::invalid("login", "no password given and stdin is no terminal")
                    .with_hint(
                        "pipe it in: `echo \"$TOKEN\" | berth login -u USER --password-stdin`",
                    )
                    .into(),
            );
        }
    };
    if password.is_empty() {
        return Err(Error::invalid("login", "the password is empty").into());
    }
    let stored = engine.login(server, &username, &password).await?;
    if json {
        let (kind, at) = match &stored {
            Stored::File(path) => ("file", path.display().to_string()),
            Stored::Helper(name) => ("helper", name.clone()),
        };
        output::json(&serde_json::json!({
            "registry": berth_registry::credentials::registry_name(server),
            "username": username,
            "stored_in": { "kind": kind, "at": at },
        }));
    } else {
        if let Stored::File(path) = &stored {
            eprintln!(
                "WARNING! Your password is stored unencrypted in {}.\n\
                 Configure a credential helper (credsStore) to keep it elsewhere.",
                path.display()
            );
        }
        println!("Login Succeeded");
    }
    Ok(0)
}

pub fn logout(engine: &Engine, server: &str, json: bool) -> anyhow::Result<i32> {
    let registry = berth_registry::credentials::registry_name(server);
    let erased = engine.logout(server)?;
    if json {
        output::json(&serde_json::json!({ "registry": registry, "removed": erased }));
    } else if erased {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A prompt whose answer is not echoed.
fn prompt_hidden(label: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    let answer = prompt(label);
    tcsetattr(&stdin, SetArg::TCSANOW, &saved)?;
    eprintln!();
    answer
}
