//! `berth cp` through dockerd's archive API (`/containers/{id}/archive`): HEAD for a path's
//! stat, GET for a tar of it, PUT to unpack one into a directory.

use std::io::Read;

use berth_core::{PathKind, PathStat};
use bollard::container::PathStatResponse;
use bytes::Bytes;
use futures_util::Stream;

// Go's `os.FileMode` type bits, in which dockerd reports a path's mode.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;
const GO_OTHER_TYPES: u32 = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);

pub fn path_stat(stat: &PathStatResponse) -> PathStat {
    let mode = stat.file_mode;
    let kind = if mode & GO_DIR != 0 {
        PathKind::Directory
    } else if mode & GO_SYMLINK != 0 {
        PathKind::Symlink
    } else if mode & GO_OTHER_TYPES != 0 {
        PathKind::Other
    } else {
        PathKind::File
    };
    let special = [
        (GO_SETUID, 0o4000),
        (GO_SETGID, 0o2000),
        (GO_STICKY, 0o1000),
    ]
    .iter()
    .filter(|(go, _)| mode & go != 0)
    .fold(0, |bits, (_, unix)| bits | unix);
    PathStat {
        kind,
        size: stat.size.max(0) as u64,
        mode: (mode & 0o777) | special,
        link_target: Some(stat.link_target.clone()).filter(|t| !t.is_empty()),
    }
}

/// The tar in `file` as a request body, read on a blocking thread a chunk at a time.
pub fn body_of(file: std::fs::File) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut chunk = vec![0; 64 * 1024];
            let n = file.read(&mut chunk)?;
            chunk.truncate(n);
            Ok::<_, std::io::Error>((chunk, file))
        })
        .await
        .map_err(std::io::Error::other);
        match read {
            Ok(Ok((chunk, _))) if chunk.is_empty() => None,
            Ok(Ok((chunk, file))) => Some((Ok(Bytes::from(chunk)), Some(file))),
            Ok(Err(e)) | Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, link: &str) -> PathStatResponse {
        serde_json::from_value(serde_json::json!({
            "name": "x", "size": 3, "mode": mode, "mtime": null, "linkTarget": link
        }))
        .unwrap()
    }

    #[test]
    fn go_file_modes_are_read_as_unix_ones() {
        let dir = path_stat(&stat(GO_DIR | 0o755, ""));
        assert_eq!(
            (dir.kind, dir.mode, dir.link_target),
            (PathKind::Directory, 0o755, None)
        );
        let link = path_stat(&stat(GO_SYMLINK | 0o777, "/bin/busybox"));
        assert_eq!(link.kind, PathKind::Symlink);
        assert_eq!(link.link_target.as_deref(), Some("/bin/busybox"));
        assert_eq!(path_stat(&stat(GO_SETUID | 0o755, "")).mode, 0o4755);
        assert_eq!(path_stat(&stat(1 << 25, "")).kind, PathKind::Other);
    }
}
