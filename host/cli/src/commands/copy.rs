//! `berth cp`: which side is the container, by docker's rule; the rest is the engine's.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_core::Error;
use berth_engine::{CopyOptions, Engine};

/// One end of a copy.
#[derive(Debug, PartialEq, Eq)]
enum End<'a> {
    Host(&'a str),
    Container { container: &'a str, path: String },
}

/// docker's rule: `NAME:PATH` names a container's path, unless the argument is absolute or its
/// part before the `:` starts with `.` or holds a `/` (write `./a:b` for a host file `a:b`).
fn end(argument: &str) -> End<'_> {
    match argument.split_once(':') {
        Some((container, path))
            if !argument.starts_with('/')
                && !container.is_empty()
                && !container.starts_with('.')
                && !container.contains('/') =>
        {
            End::Container {
                container,
                path: format!("/{}", path.trim_start_matches('/')),
            }
        }
        _ => End::Host(argument),
    }
}

pub async fn cp(
    engine: &Engine,
    source: &str,
    dest: &str,
    options: CopyOptions,
) -> anyhow::Result<i32> {
    match (end(source), end(dest)) {
        (End::Container { container, path }, End::Host(host)) => {
            let record = engine.resolve(container)?;
            if host == "-" {
                let out = duplicate(std::io::stdout().as_fd())?;
                engine.copy_out_tar(&record, &path, out, options).await?;
            } else {
                engine
                    .copy_out(&record, &path, Path::new(host), options)
                    .await?;
            }
        }
        (End::Host(host), End::Container { container, path }) => {
            let record = engine.resolve(container)?;
            if host == "-" {
                let tar = duplicate(std::io::stdin().as_fd())?;
                engine.copy_in_tar(&record, tar, &path).await?;
            } else {
                engine
                    .copy_in(&record, Path::new(host), &path, options)
                    .await?;
            }
        }
        (End::Host(_), End::Host(_)) => {
            return Err(
                Error::invalid("berth cp", "neither SRC nor DEST is in a container")
                    .with_hint("write the container's side as CONTAINER:PATH")
                    .into(),
            );
        }
        (End::Container { .. }, End::Container { .. }) => {
            return Err(Error::invalid(
                "berth cp",
                "copying between two containers is not supported",
            )
            .with_hint("copy to the host, then from there")
            .into());
        }
    }
    Ok(0)
}

/// This process's stdin or stdout as a file of its own, for a tar stream.
fn duplicate(fd: std::os::fd::BorrowedFd<'_>) -> anyhow::Result<std::fs::File> {
    let owned: OwnedFd = fd
        .try_clone_to_owned()
        .map_err(|e| Error::io("duplicating a standard stream", e))?;
    Ok(std::fs::File::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_side_is_found_as_docker_finds_it() {
        let container = |container, path: &str| End::Container {
            container,
            path: path.into(),
        };
        assert_eq!(end("web:/etc/hosts"), container("web", "/etc/hosts"));
        assert_eq!(end("web:etc"), container("web", "/etc"));
        assert_eq!(end("web:"), container("web", "/"));
        assert_eq!(end("/tmp/a:b"), End::Host("/tmp/a:b"));
        assert_eq!(end("./a:b"), End::Host("./a:b"));
        assert_eq!(end("dir/a:b"), End::Host("dir/a:b"));
        assert_eq!(end("-"), End::Host("-"));
        assert_eq!(end("plain"), End::Host("plain"));
    }
}
