//! Image archives written byte by byte, so tests control every digest and header: layer tars,
//! `docker save` archives and OCI image layouts (which skopeo can also push to a registry).

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::env::busybox_rootfs;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A regular-file header as real tools write it (owner and mtime set).
pub fn file_header(size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1);
    header.set_cksum();
    header
}

/// A layer tar: the busybox rootfs (when `with_busybox`) plus `files` (path, content); an empty
/// file named `.wh.<name>` is a whiteout.
pub fn layer(with_busybox: bool, files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if with_busybox {
        builder.append_dir_all(".", busybox_rootfs()).unwrap();
    }
    for (path, data) in files {
        builder
            .append_data(&mut file_header(data.len()), path, data.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// An image config whose default command lists /etc and echoes `$MARKER` (set to `marker`).
pub fn image_config(diff_ids: &[String], marker: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin", format!("MARKER={marker}")], "Cmd": ["sh", "-c", "ls /etc; echo $MARKER"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>()},
    }))
    .unwrap()
}

/// `image_config` for an image whose `USER` is `user`.
pub fn image_config_as(diff_ids: &[String], marker: &str, user: &str) -> Vec<u8> {
    let mut config: serde_json::Value =
        serde_json::from_slice(&image_config(diff_ids, marker)).unwrap();
    config["config"]["User"] = user.into();
    serde_json::to_vec(&config).unwrap()
}

/// A classic `docker save` archive tagged `tag` (also its marker); `diff_ids` overrides the
/// (correct) ones.
pub fn docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256_hex(l)).collect());
    docker_archive_with_config(path, tag, layers, &image_config(&diff_ids, tag));
}

/// The image with a user of its own: its base layer's `/etc/passwd` has only root, the top
/// layer's adds `nobody` (65534:65534), and its config says `User: "nobody"`, as
/// `docker import --change 'USER nobody'` writes it; written as a `docker save` archive at
/// `path`.
pub fn named_user_archive(path: &Path, tag: &str) {
    let layers = [
        layer(true, &[("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")]),
        layer(
            false,
            &[
                (
                    "etc/passwd",
                    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
                ),
                ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
            ],
        ),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    docker_archive_with_config(
        path,
        tag,
        &layers,
        &image_config_as(&diff_ids, tag, "nobody"),
    );
}

/// A classic `docker save` archive tagged `tag` with `config` as its image config.
pub fn docker_archive_with_config(path: &Path, tag: &str, layers: &[Vec<u8>], config: &[u8]) {
    let config_name = format!("{}.json", sha256_hex(config));
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    let mut append = |name: &str, data: &[u8]| {
        builder
            .append_data(&mut file_header(data.len()), name, data)
            .unwrap();
    };
    let mut layer_paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        append(&name, layer);
        layer_paths.push(name);
    }
    append(&config_name, config);
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": layer_paths}]);
    append("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    builder.into_inner().unwrap();
}

/// An OCI layout directory with gzip layers, annotated `ref.name = name` (also its marker).
pub fn oci_layout(dir: &Path, name: &str, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let blob = |data: &[u8]| {
        let digest = sha256_hex(data);
        fs::write(blobs.join(&digest), data).unwrap();
        (format!("sha256:{digest}"), data.len())
    };
    let mut descriptors = Vec::new();
    for layer in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, layer).unwrap();
        let (digest, size) = blob(&gz.finish().unwrap());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_hex(l)).collect();
    let (config_digest, config_size) = blob(&image_config(&diff_ids, name));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors,
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = blob(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": name}}],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
