//! Images produced by the real tools, not by our own writer: `docker save` from a real dockerd
//! (started by scripts/test.sh) and an OCI layout written by skopeo from that archive.

use std::process::Command;

use berth_tests::env::{BerthEnv, busybox_rootfs};

fn sh(script: &str) {
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "`{script}` failed");
}

#[test]
fn docker_save_and_skopeo_oci_layouts_import_and_run() {
    let env = BerthEnv::new("");
    let dir = env.dir.path();
    let tag = format!("berth-test/busybox:{}", std::process::id());
    sh(&format!(
        "tar -C {rootfs} -c . | docker import --change 'ENV GREETING=from-docker' --change 'CMD [\"sh\", \"-c\", \"echo $GREETING\"]' - {tag} >/dev/null \
         && docker save -o {dir}/saved.tar {tag} \
         && docker rmi {tag} >/dev/null \
         && skopeo copy --quiet docker-archive:{dir}/saved.tar oci:{dir}/layout:busybox",
        rootfs = busybox_rootfs().display(),
        dir = dir.display(),
    ));

    let saved = dir.join("saved.tar").display().to_string();
    env.berth(&["image", "import", &saved]).ok();
    // The name recorded by docker, and the image's own config (Env, Cmd), are kept.
    let run = env.berth(&["run", "--rm", &tag]).ok();
    assert_eq!(run.stdout, "from-docker\n");

    let layout = dir.join("layout").display().to_string();
    env.berth(&["image", "import", &layout, "oci-busybox:1"])
        .ok();
    let run = env.berth(&["run", "--rm", "oci-busybox:1"]).ok();
    assert_eq!(run.stdout, "from-docker\n");

    // Both images share their one layer.
    let images = env.berth(&["image", "ls", "--json"]).ok().json();
    assert_eq!(images.as_array().unwrap().len(), 2);
    assert_eq!(images[0]["layers"], images[1]["layers"]);
}
