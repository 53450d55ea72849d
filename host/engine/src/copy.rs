//! `berth cp`: files between the host and a container, landing where `docker cp` puts them.
//!
//! The backend reads and writes the container's side as a tar (its own archive API, or a
//! confined walk of the rootfs); this side turns the host path into or out of that tar through
//! a pipe, so nothing is spooled. A host directory a copy lands in is the root of its unpack, so
//! a container's tar cannot write outside it whatever links it holds.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use berth_core::{Capabilities, Capability, Error, ErrorKind, Object, PathKind, PathStat, Result};
use berth_oci::files::{Root, Top, Unpack, last_name};

use crate::{ContainerRecord, Engine};

/// `cp -L`, `cp -a`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Follow a symlink the source path ends in.
    pub follow_link: bool,
    /// Keep the source's owners (otherwise the copy belongs to whoever receives it).
    pub archive: bool,
}

/// Where a copy lands: unpacked into `dir`, its top entry renamed to `rename`.
#[derive(Debug, PartialEq, Eq)]
struct Landing {
    dir: String,
    rename: Option<String>,
}

/// docker's rules, from what the destination is (`None`: nothing there); `shown` names the
/// destination in errors.
fn landing(
    source_is_dir: bool,
    dest: &str,
    dest_kind: Option<PathKind>,
    shown: &str,
) -> Result<Landing> {
    let parent_and_name = || {
        let name = last_name(dest).ok_or_else(|| Error::invalid(shown, "not a path to copy to"))?;
        let parent = Path::new(dest.trim_end_matches('/'))
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        Ok::<_, Error>(Landing {
            dir: parent,
            rename: Some(name),
        })
    };
    match dest_kind {
        Some(PathKind::Directory) => Ok(Landing {
            dir: dest.to_string(),
            rename: None,
        }),
        Some(_) if source_is_dir => {
            Err(Error::invalid(dest, "cannot copy a directory onto a file")
                .with_hint("name a directory, or a path that does not exist yet"))
        }
        Some(_) => parent_and_name(),
        None if dest.ends_with('/') && !source_is_dir => Err(Error::not_found(Object::Path, dest)
            .with_hint("a destination ending in / must be an existing directory")),
        None => parent_and_name(),
    }
}

impl Engine {
    fn copy_backend(
        &self,
        record: &ContainerRecord,
    ) -> Result<&std::sync::Arc<dyn berth_core::ContainerBackend>> {
        self.backends
            .require(&record.backend, Capabilities::of(&[Capability::CopyFiles]))?;
        self.backend(&record.backend)
    }

    /// What `path` is in the container, following symlinks (inside the container) with
    /// `follow`; the path followed to, and its stat (`None`: nothing there).
    async fn container_path(
        &self,
        record: &ContainerRecord,
        path: &str,
        follow: bool,
    ) -> Result<(String, Option<PathStat>)> {
        let backend = self.copy_backend(record)?;
        let mut path = path.to_string();
        for _ in 0..16 {
            let stat = match backend.stat_path(&record.id, &path).await {
                Ok(stat) => stat,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok((path, None)),
                Err(e) => return Err(e),
            };
            match (&stat.link_target, follow) {
                (Some(target), true) => path = link_destination(&path, target),
                _ => return Ok((path, Some(stat))),
            }
        }
        Err(Error::invalid(&path, "too many levels of symbolic links"))
    }

    /// The container's `source` (followed with `-L`) and what it is; an error when nothing is
    /// there.
    async fn copy_source(
        &self,
        record: &ContainerRecord,
        source: &str,
        options: CopyOptions,
    ) -> Result<(String, PathStat)> {
        let (followed, stat) = self
            .container_path(record, source, options.follow_link)
            .await?;
        Ok((followed, stat.ok_or_else(|| not_in(record, source))?))
    }

    /// `cp CONTAINER:SRC DEST`.
    pub async fn copy_out(
        &self,
        record: &ContainerRecord,
        source: &str,
        dest: &Path,
        options: CopyOptions,
    ) -> Result<()> {
        let _lock = self.records.lock(&record.id)?;
        let (followed, stat) = self.copy_source(record, source, options).await?;
        let source_is_dir = stat.kind == PathKind::Directory;
        let shown = dest.display().to_string();
        let dest_kind = match std::fs::metadata(dest) {
            Ok(meta) if meta.is_dir() => Some(PathKind::Directory),
            Ok(_) => Some(PathKind::File),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading {shown}"), e)),
        };
        let top = Top::of(&followed);
        if top == Top::Contents && dest_kind.is_none() {
            berth_core::store::create_dir_all(dest)?;
            return self
                .copy_out_into(record, &followed, dest, None, options)
                .await;
        }
        let landing = landing(source_is_dir, &shown, dest_kind, &shown)?;
        // The tar's top is named after the path followed to; it lands under the name given.
        let rename = match top {
            Top::Named(top) => {
                let wanted = landing
                    .rename
                    .or_else(|| last_name(source))
                    .unwrap_or_else(|| top.clone());
                (top != wanted).then_some((top, wanted))
            }
            Top::Contents => None,
        };
        self.copy_out_into(record, &followed, Path::new(&landing.dir), rename, options)
            .await
    }

    async fn copy_out_into(
        &self,
        record: &ContainerRecord,
        source: &str,
        dir: &Path,
        rename: Option<(String, String)>,
        options: CopyOptions,
    ) -> Result<()> {
        let backend = self.copy_backend(record)?;
        let root = Root::open(dir)?;
        let owner = (!options.archive).then(|| {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        });
        let (reader, writer) = pipe()?;
        let unpack = tokio::task::spawn_blocking(move || {
            let options = Unpack {
                owner,
                rename,
                trusted: false,
            };
            root.unpack("/", BufReader::new(reader), &options)
        });
        let written = backend.copy_out(&record.id, source, writer).await;
        let unpacked = unpack
            .await
            .map_err(|e| Error::io("unpacking the copy", std::io::Error::other(e)))?;
        first_failure(written, unpacked)
    }

    /// `cp CONTAINER:SRC -`: a tar of `source` into `out`.
    pub async fn copy_out_tar(
        &self,
        record: &ContainerRecord,
        source: &str,
        out: File,
        options: CopyOptions,
    ) -> Result<()> {
        let _lock = self.records.lock(&record.id)?;
        let (followed, _) = self.copy_source(record, source, options).await?;
        self.copy_backend(record)?
            .copy_out(&record.id, &followed, out)
            .await
    }

    /// `cp SRC CONTAINER:DEST`.
    pub async fn copy_in(
        &self,
        record: &ContainerRecord,
        source: &Path,
        dest: &str,
        options: CopyOptions,
    ) -> Result<()> {
        let _lock = self.records.lock(&record.id)?;
        let source_text = source.display().to_string();
        let absolute = std::path::absolute(source)
            .map_err(|e| Error::io(format!("finding {source_text}"), e))?;
        let followed = if options.follow_link {
            std::fs::canonicalize(&absolute)
                .map_err(|e| Error::io(format!("following {source_text}"), e))?
        } else {
            absolute
        };
        let meta = std::fs::symlink_metadata(&followed).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(Object::Path, &source_text)
            } else {
                Error::io(format!("reading {source_text}"), e)
            }
        })?;
        let (dest_followed, dest_stat) = self.container_path(record, dest, true).await?;
        let dest_kind = dest_stat.map(|s| s.kind);
        let shown = format!("{}:{dest}", record.name);
        let landing = landing(meta.is_dir(), &dest_followed, dest_kind, &shown)?;
        if dest_kind.is_none() {
            let parent = self.container_path(record, &landing.dir, true).await?;
            if parent.1.map(|s| s.kind) != Some(PathKind::Directory) {
                return Err(not_in(record, &landing.dir)
                    .with_hint("the directory a copy lands in must exist in the container"));
            }
        }
        let top = match landing.rename {
            Some(name) => Top::Named(name),
            None => Top::of(&source_text),
        };
        let host = Root::open(Path::new("/"))?;
        let packed_path = followed.display().to_string();
        let (reader, writer) = pipe()?;
        // Without -a, what is copied in belongs to the container's root, as with docker cp.
        let owner = (!options.archive).then_some((0, 0));
        let pack = tokio::task::spawn_blocking(move || {
            host.pack(&packed_path, &top, owner, BufWriter::new(writer))
        });
        let written = self
            .copy_backend(record)?
            .copy_in(&record.id, &landing.dir, reader)
            .await;
        let packed = pack
            .await
            .map_err(|e| Error::io("packing the copy", std::io::Error::other(e)))?;
        first_failure(packed, written)
    }

    /// `cp - CONTAINER:DIR`: the tar on `tar` unpacked into the container's directory `dest`,
    /// with the owners it gives.
    pub async fn copy_in_tar(&self, record: &ContainerRecord, tar: File, dest: &str) -> Result<()> {
        let _lock = self.records.lock(&record.id)?;
        let (dest, stat) = self.container_path(record, dest, true).await?;
        if stat.map(|s| s.kind) != Some(PathKind::Directory) {
            return Err(Error::invalid(
                format!("{}:{dest}", record.name),
                "not a directory in the container",
            )
            .with_hint("a tar read from - is unpacked into an existing directory"));
        }
        self.copy_backend(record)?
            .copy_in(&record.id, &dest, tar)
            .await
    }
}

/// Where the symlink at `path` with `target` points, as a path in the same tree.
fn link_destination(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
    parent.join(target).display().to_string()
}

fn not_in(record: &ContainerRecord, path: &str) -> Error {
    Error::not_found(Object::Path, format!("{}:{path}", record.name))
}

fn pipe() -> Result<(File, File)> {
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("making a pipe", std::io::Error::from(e)))?;
    Ok((File::from(reader), File::from(writer)))
}

/// The error of whichever side of a pipe failed first: the other side then only saw the pipe
/// close (a broken pipe, or a tar that ends early).
fn first_failure(writer: Result<()>, reader: Result<()>) -> Result<()> {
    match (writer, reader) {
        (Ok(()), reader) => reader,
        (Err(writer), Ok(())) => Err(writer),
        (Err(writer), Err(reader)) if broken_pipe(&writer) => Err(reader),
        (Err(writer), Err(_)) => Err(writer),
    }
}

fn broken_pipe(error: &Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_lands_where_docker_cp_puts_it() {
        let into = |dir: &str| Landing {
            dir: dir.into(),
            rename: None,
        };
        let as_name = |dir: &str, name: &str| Landing {
            dir: dir.into(),
            rename: Some(name.into()),
        };
        // Into an existing directory, under the source's name.
        assert_eq!(
            landing(false, "/tmp", Some(PathKind::Directory), "/tmp").unwrap(),
            into("/tmp")
        );
        assert_eq!(
            landing(true, "/tmp/", Some(PathKind::Directory), "/tmp/").unwrap(),
            into("/tmp/")
        );
        // Onto a file, or a new name: beside it, renamed.
        assert_eq!(
            landing(false, "/etc/hosts", Some(PathKind::File), "/etc/hosts").unwrap(),
            as_name("/etc", "hosts")
        );
        assert_eq!(
            landing(true, "/srv/new", None, "/srv/new").unwrap(),
            as_name("/srv", "new")
        );
        assert_eq!(
            landing(false, "relative", None, "relative").unwrap(),
            as_name(".", "relative")
        );
        // What docker refuses.
        assert_eq!(
            landing(true, "/etc/hosts", Some(PathKind::File), "/etc/hosts")
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            landing(false, "/nope/", None, "/nope/").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn links_are_followed_as_paths_in_the_same_tree() {
        assert_eq!(
            link_destination("/etc/localtime", "/usr/share/zoneinfo/UTC"),
            "/usr/share/zoneinfo/UTC"
        );
        assert_eq!(link_destination("/bin/sh", "busybox"), "/bin/busybox");
        assert_eq!(link_destination("/a/b", "../c"), "/a/../c");
    }
}
