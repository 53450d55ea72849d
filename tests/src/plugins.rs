//! The example and test plugins, built from source (`plugins/`, target wasm32-wasip2) once per
//! test process into `plugins/target`, in the style of wasmtime's test-programs: one constant
//! per plugin, `NAMING.path()` builds on first use and returns the component.
//!
//! A file lock serialises builds across test binaries running in parallel; cargo itself makes
//! the rebuild a no-op when nothing changed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// One plugin crate of the `plugins/` workspace.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The crate's library name: the component is `<lib>.wasm`.
    pub lib: &'static str,
}

/// Name policy: DNS-label rule or `pattern`; `app-{id}-{replica:04x}` names.
pub const NAMING: Plugin = Plugin {
    lib: "berth_naming",
};
/// Backend policy: `berth.backend` label, image `rules`, else first healthy.
pub const SELECTOR: Plugin = Plugin {
    lib: "berth_selector",
};
/// Lifecycle hooks: stamps env/labels at pre-create, enforces memory limits and mount prefixes.
pub const GUARD: Plugin = Plugin { lib: "berth_guard" };
/// Test: loops forever in every hook.
pub const LOOPER: Plugin = Plugin {
    lib: "berth_test_looper",
};
/// Test: allocates without bound in every hook.
pub const HOG: Plugin = Plugin {
    lib: "berth_test_hog",
};
/// Test: a name policy that panics.
pub const TRAPPER: Plugin = Plugin {
    lib: "berth_test_trapper",
};
/// Test: a hook importing the `containers` interface.
pub const SNOOP: Plugin = Plugin {
    lib: "berth_test_snoop",
};
/// Test: sets `BERTH_CONTAINER_NAME` at pre-create, contradicting guard.
pub const CONFLICT: Plugin = Plugin {
    lib: "berth_test_conflict",
};

/// Test: a name policy that counts its instance's calls and panics on `boom`.
pub const COUNTER: Plugin = Plugin {
    lib: "berth_test_counter",
};

/// Test: gives each container a volume and packages through the `quotas` and `packages`
/// interfaces, and removes the volume at create-failed (the container did not come to be) and
/// after the container.
pub const PROVISIONER: Plugin = Plugin {
    lib: "berth_test_provisioner",
};

/// Test: commits every container it sees stop, through the `snapshots` interface.
pub const VERSIONER: Plugin = Plugin {
    lib: "berth_test_versioner",
};

/// Test: a backend policy answering its `answer` setting, candidate or not.
pub const ROGUE: Plugin = Plugin {
    lib: "berth_test_rogue",
};

/// Test: an adversary in all three worlds, attacking when a container's name or `attack`
/// label says how (huge or control-laden answers, broken names and patches, log floods).
pub const HOSTILE: Plugin = Plugin {
    lib: "berth_test_hostile",
};

/// Test: exports `berth:plugin/naming@0.2.0` (a frozen version: every one is checked) with a
/// mistyped `generate-name`.
pub const IMPOSTOR: Plugin = Plugin {
    lib: "berth_test_impostor",
};

/// `naming` as it was for berth:plugin@0.1.0, built against `wit/0.1.0`.
pub const COMPAT_NAMING: Plugin = Plugin {
    lib: "berth_compat_naming",
};

/// `selector` as it was for berth:plugin@0.1.0, built against `wit/0.1.0`.
pub const COMPAT_SELECTOR: Plugin = Plugin {
    lib: "berth_compat_selector",
};

/// `guard` as it was for berth:plugin@0.1.0, built against `wit/0.1.0`.
pub const COMPAT_GUARD: Plugin = Plugin {
    lib: "berth_compat_guard",
};

/// `naming` as it was for berth:plugin@0.2.0, built against `wit/0.2.0`.
pub const COMPAT_0_2_NAMING: Plugin = Plugin {
    lib: "berth_compat_0_2_naming",
};

/// `selector` as it was for berth:plugin@0.2.0, built against `wit/0.2.0`.
pub const COMPAT_0_2_SELECTOR: Plugin = Plugin {
    lib: "berth_compat_0_2_selector",
};

/// `guard` as it was for berth:plugin@0.2.0, built against `wit/0.2.0`.
pub const COMPAT_0_2_GUARD: Plugin = Plugin {
    lib: "berth_compat_0_2_guard",
};

/// `naming` as it was for berth:plugin@0.3.0, built against `wit/0.3.0`.
pub const COMPAT_0_3_NAMING: Plugin = Plugin {
    lib: "berth_compat_0_3_naming",
};

/// `selector` as it was for berth:plugin@0.3.0, built against `wit/0.3.0`.
pub const COMPAT_0_3_SELECTOR: Plugin = Plugin {
    lib: "berth_compat_0_3_selector",
};

/// `guard` as it was for berth:plugin@0.3.0, built against `wit/0.3.0`.
pub const COMPAT_0_3_GUARD: Plugin = Plugin {
    lib: "berth_compat_0_3_guard",
};

pub const ALL: [Plugin; 23] = [
    NAMING,
    SELECTOR,
    GUARD,
    LOOPER,
    HOG,
    TRAPPER,
    SNOOP,
    CONFLICT,
    COUNTER,
    PROVISIONER,
    VERSIONER,
    ROGUE,
    HOSTILE,
    IMPOSTOR,
    COMPAT_NAMING,
    COMPAT_SELECTOR,
    COMPAT_GUARD,
    COMPAT_0_2_NAMING,
    COMPAT_0_2_SELECTOR,
    COMPAT_0_2_GUARD,
    COMPAT_0_3_NAMING,
    COMPAT_0_3_SELECTOR,
    COMPAT_0_3_GUARD,
];

impl Plugin {
    /// The built component; builds the plugins workspace on first call in this process.
    pub fn path(&self) -> PathBuf {
        let path = build().join(format!("{}.wasm", self.lib));
        assert!(path.exists(), "{} was not built", path.display());
        path
    }
}

/// `plugins/target/wasm32-wasip2/release`, after a successful build.
fn build() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let plugins = crate::bin::workspace_root().join("plugins");
        let target = plugins.join("target");
        std::fs::create_dir_all(&target).expect("create plugins/target");
        let lock = std::fs::File::create(target.join(".berth-tests.lock")).expect("create the build lock");
        lock.lock().expect("lock plugins/target");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(plugins.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            // Flags meant for the host build must not leak into the wasm one.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("run cargo to build the plugins");
        assert!(
            output.status.success(),
            "building plugins/ failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2").join("release")
    })
}
