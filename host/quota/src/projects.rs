//! The `/etc/projects` file xfs_quota reads: `id:path` per project. berth keeps its own
//! projects there beside lines it must not disturb, and rewrites the file only when its
//! content changes (compared with the file on disk, so a restart rewrites nothing).

use std::path::Path;

use berth_core::{IoContext, Result, store};
use sha1::{Digest, Sha1};

/// sysinner's v1 volume names: `^[a-f0-9]{12,20}\.[a-f0-9]{4}$`.
fn is_v1_name(name: &str) -> bool {
    let Some((head, tail)) = name.split_once('.') else {
        return false;
    };
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (12..=20).contains(&head.len()) && tail.len() == 4 && hex(head) && hex(tail)
}

/// sysinner's v2 names: `^app-[a-f0-9]{8,16}-[0-9a-f]{4}$`.
fn is_v2_name(name: &str) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let Some(rest) = name.strip_prefix("app-") else {
        return false;
    };
    let Some((app, replica)) = rest.split_once('-') else {
        return false;
    };
    (8..=16).contains(&app.len()) && replica.len() == 4 && hex(app) && hex(replica)
}

/// The new file: kept lines (without ':', verbatim; `id:path` only for a v1 name that is not
/// a v2 name), then one `id:path` line per project (ids below 1 skipped).
pub fn render(existing: &str, projects: &[(u32, &Path)]) -> String {
    let mut out = String::new();
    for line in existing.lines() {
        let keep = match line.split_once(':') {
            None => true,
            Some((_, path)) => {
                let last = Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                is_v1_name(&last) && !is_v2_name(&last)
            }
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (id, path) in projects.iter().filter(|(id, _)| *id >= 1) {
        out.push_str(&format!("{id}:{}\n", path.display()));
    }
    out
}

/// Rewrites `file` for `projects` if that changes its SHA-1; whether it wrote.
pub fn sync(file: &Path, projects: &[(u32, &Path)]) -> Result<bool> {
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context(|| format!("reading {}", file.display())),
    };
    let wanted = render(&existing, projects);
    if Sha1::digest(wanted.as_bytes()) == Sha1::digest(existing.as_bytes()) {
        return Ok(false);
    }
    store::atomic_write(file, wanted.as_bytes(), 0o644)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_legacy_and_foreign_lines_and_drops_the_rest() {
        let existing = "5:/x/0123456789ab.0001\n7:/p/app-0123abcd-0001\njunk\n9:/p/other\n";
        let ours = Path::new("/vol/data");
        assert_eq!(
            render(existing, &[(100, ours), (0, ours)]),
            "5:/x/0123456789ab.0001\njunk\n100:/vol/data\n"
        );
    }

    #[test]
    fn names_follow_the_upstream_patterns() {
        assert!(is_v1_name("0123456789ab.0001"));
        assert!(!is_v1_name("0123456789a.0001"));
        assert!(!is_v1_name("0123456789ab.001"));
        assert!(is_v2_name("app-0123abcd-0001"));
        assert!(!is_v2_name("app-0123abc-0001"));
        assert!(!is_v2_name("app-0123abcd-00001"));
    }

    #[test]
    fn an_unchanged_file_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("projects");
        std::fs::write(&file, "junk\n").unwrap();
        let ours = Path::new("/vol/a");
        assert!(sync(&file, &[(100, ours)]).unwrap());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "junk\n100:/vol/a\n"
        );
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
        // As after a restart: nothing in memory, the file on disk decides.
        assert!(!sync(&file, &[(100, ours)]).unwrap());
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap()),
            inode,
            "not replaced"
        );
    }
}
