//! Locating the `berth` binary built by this same cargo invocation's profile.

use std::path::PathBuf;

/// `target/<profile>/berth`, next to the `deps/` directory holding this test binary.
pub fn berth_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let berth = profile_dir.join("berth");
    assert!(
        berth.exists(),
        "{} is missing: build it first with `cargo build --release -p berth-cli`",
        berth.display()
    );
    berth
}

/// The workspace root (for examples/, plugins/, wit/).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}
