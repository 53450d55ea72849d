//! Packages (.ipk) through the `berth` binary: built from a directory, installed from a file or
//! a repository directory, mounted read-only into a real container; corrupt and missing ones.

use std::path::Path;

use berth_tests::env::BerthEnv;

const IMAGE: &str = "busybox:local";

/// A package source directory with an executable script.
fn source(dir: &Path) -> String {
    let src = dir.join("hello-src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(
        src.join("bin/hello"),
        "#!/bin/sh\necho hello from a package\n",
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("bin/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    src.display().to_string()
}

#[test]
fn a_package_is_built_installed_and_mounted_read_only() {
    let env = BerthEnv::new("").with_busybox();
    let src = source(env.dir.path());
    let file = env.dir.path().join("hello.ipk").display().to_string();
    env.berth(&[
        "pkg",
        "build",
        &src,
        "--name",
        "hello",
        "--version",
        "1.0.0",
        "-o",
        &file,
    ])
    .ok();
    let header = env.berth(&["pkg", "inspect", &file]).ok().json();
    assert_eq!(header["name"], "hello");
    assert_eq!(header["compression"], "xz");

    let installed = env.berth(&["pkg", "install", &file, "--json"]).ok().json();
    let id = installed["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("hello_1.0.0_linux_"), "{installed}");
    assert!(
        env.state_dir()
            .join("var/ipk_install/hello")
            .join(&id)
            .join("bin/hello")
            .is_file()
    );
    assert!(
        env.state_dir()
            .join("var/ipk/hello")
            .join(format!("{id}.ipk"))
            .is_file()
    );
    // Idempotent.
    assert_eq!(
        env.berth(&["pkg", "install", &file, "--json"]).ok().json(),
        installed
    );

    let run = env.berth(&[
        "run",
        "--rm",
        "--pkg",
        "hello@1.0.0",
        IMAGE,
        "sh",
        "-c",
        "/usr/berth/hello/bin/hello; touch /usr/berth/hello/x || echo read-only",
    ]);
    assert_eq!(run.ok().stdout, "hello from a package\nread-only\n");

    let listed = env.berth(&["pkg", "ls", "--json"]).ok().json();
    assert_eq!(listed[0]["version"], "1.0.0");
    env.berth(&["pkg", "rm", "hello@1.0.0"]).ok();
    assert_eq!(
        env.berth(&["pkg", "ls", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn run_installs_from_the_repository_and_refuses_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let env = BerthEnv::new(&format!(
        "[packages]\nrepository = \"{}\"\nmount-prefix = \"/opt/pkgs\"\n",
        repo.display()
    ))
    .with_busybox();
    let src = source(env.dir.path());
    // Without -o, `pkg build` writes <id>.ipk into the current directory: the repository.
    let build = env
        .command(&[
            "pkg",
            "build",
            &src,
            "--name",
            "hello",
            "--version",
            "2.0.0-rc.1",
            "--compression",
            "gzip",
            "--json",
        ])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(build.status.success(), "{build:?}");
    let built: serde_json::Value = serde_json::from_slice(&build.stdout).unwrap();
    let id = format!(
        "{}_{}_{}_{}",
        built["name"].as_str().unwrap(),
        built["version"].as_str().unwrap(),
        built["os"].as_str().unwrap(),
        built["arch"].as_str().unwrap()
    );
    assert!(repo.join(format!("{id}.ipk")).is_file());

    let run = env.berth(&[
        "run",
        "--rm",
        "--pkg",
        "hello@2.0.0-rc.1",
        IMAGE,
        "/opt/pkgs/hello/bin/hello",
    ]);
    assert_eq!(run.ok().stdout, "hello from a package\n");

    let missing = env.berth(&["run", "--rm", "--pkg", "absent@1.0.0", IMAGE, "true"]);
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(missing.stderr.contains("absent"), "{missing:?}");
    assert_eq!(env.berth(&["ps", "-a", "-q"]).ok().stdout, "");

    let bad = env.berth(&["run", "--rm", "--pkg", "hello@v2", IMAGE, "true"]);
    assert_eq!(bad.code, 64, "{bad:?}");
}

#[test]
fn corrupt_packages_and_bad_versions_are_refused_with_nothing_left() {
    let env = BerthEnv::new("");
    let src = source(env.dir.path());
    let bad_version = env.berth(&["pkg", "build", &src, "--name", "x", "--version", "01.0.0"]);
    assert_eq!(bad_version.code, 64, "{bad_version:?}");
    assert!(
        bad_version.stderr.contains("semantic version"),
        "{bad_version:?}"
    );

    let file = env.dir.path().join("x.ipk");
    env.berth(&[
        "pkg",
        "build",
        &src,
        "--name",
        "x",
        "--version",
        "1.0.0",
        "--compression",
        "none",
        "-o",
        &file.display().to_string(),
    ])
    .ok();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let install = env.berth(&["pkg", "install", &file.display().to_string()]);
    assert_eq!(install.code, 65, "{install:?}");
    assert!(install.stderr.contains("sha256"), "{install:?}");
    assert!(!env.state_dir().join("var").exists(), "nothing left behind");
}
