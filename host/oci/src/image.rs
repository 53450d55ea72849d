//! Images in memory, as a backend that stores blobs (containerd's content store, an OCI
//! layout) takes them: a manifest, a config and layers, each a blob with its digest. A pull
//! keeps the registry's manifest byte for byte; an archive import assembles an OCI manifest for
//! the archive's blobs.

use std::path::Path;

use berth_core::{Error, Result};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, Digest, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, OciLayoutBuilder,
};

use crate::digest::sha256_digest;

/// One content-addressed blob: a manifest, a config or a layer.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: MediaType,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: MediaType, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type,
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// The descriptor that points at this blob.
    pub fn descriptor(&self) -> Descriptor {
        let digest = Digest::try_from(self.digest.as_str()).expect("sha256 digests are valid");
        Descriptor::new(self.media_type.clone(), self.bytes.len() as u64, digest)
    }
}

/// A manifest or an index: what a tag, an index entry or an image record points at. Both are
/// boxed, as oci-spec's types are hundreds of bytes.
#[derive(Debug, Clone)]
pub enum Document {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

impl Document {
    /// Parses either, told apart by the field only an index has (`manifests`), since media
    /// types are optional in both; the error is the reason, for the caller to name the blob.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Document, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON: {e}"))?;
        if value.get("manifests").is_some() {
            serde_json::from_value(value)
                .map(|i| Document::Index(Box::new(i)))
                .map_err(|e| format!("the index does not parse: {e}"))
        } else if value.get("config").is_some() {
            serde_json::from_value(value)
                .map(|m| Document::Manifest(Box::new(m)))
                .map_err(|e| format!("the manifest does not parse: {e}"))
        } else {
            Err("it is neither a manifest nor an index".into())
        }
    }
}

/// An image for this platform, every blob checked against its digest.
#[derive(Debug, Clone)]
pub struct Image {
    /// Its normalised name.
    pub name: String,
    /// The platform's manifest, byte for byte (so its digest is the image's).
    pub manifest: Blob,
    pub config: Blob,
    /// Base layer first.
    pub layers: Vec<Blob>,
}

impl Image {
    /// An image whose manifest is made here, an OCI manifest for `config` and `layers`.
    pub fn assemble(name: String, config: Blob, layers: Vec<Blob>) -> Image {
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor())
            .layers(layers.iter().map(Blob::descriptor).collect::<Vec<_>>())
            .build()
            .expect("every required manifest field is set");
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        Image {
            name,
            manifest: Blob::new(MediaType::ImageManifest, bytes),
            config,
            layers,
        }
    }

    /// The config's `rootfs.diff_ids` (`sha256:`), base first, one per layer.
    pub fn diff_ids(&self) -> Result<Vec<String>> {
        let parsed = crate::config::parse(&self.config.bytes).map_err(|m| self.corrupt(m))?;
        if parsed.diff_ids.len() != self.layers.len() {
            return Err(self.corrupt(format!(
                "the config lists {} layers, the manifest {}",
                parsed.diff_ids.len(),
                self.layers.len()
            )));
        }
        Ok(parsed.diff_ids)
    }

    fn corrupt(&self, message: String) -> Error {
        Error::Corrupt {
            what: format!("image config of {}", self.name),
            path: self.config.digest.clone().into(),
            message,
            hint: "pull or import the image again; if it persists, its source is damaged".into(),
        }
    }

    /// Writes the image as an OCI layout at `dir` (which must exist), named by
    /// `org.opencontainers.image.ref.name`, for a backend that imports layouts.
    pub fn write_oci_layout(&self, dir: &Path) -> Result<()> {
        let blobs = dir.join("blobs").join("sha256");
        berth_core::store::create_dir_all(&blobs)?;
        for blob in [&self.manifest, &self.config]
            .into_iter()
            .chain(&self.layers)
        {
            let hex = blob.digest.trim_start_matches("sha256:");
            write(&blobs.join(hex), &blob.bytes)?;
        }
        let mut entry = self.manifest.descriptor();
        entry.set_annotations(Some(
            [(ANNOTATION_REF_NAME.to_string(), self.name.clone())].into(),
        ));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![entry])
            .build()
            .expect("every required index field is set");
        let layout = OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()
            .expect("the layout version is set");
        write(&dir.join("index.json"), &to_json(&index))?;
        write(&dir.join("oci-layout"), &to_json(&layout))
    }
}

fn to_json(document: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(document).expect("OCI documents serialise")
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(diff_ids: &[&str]) -> Blob {
        Blob::new(
            MediaType::ImageConfig,
            serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn an_assembled_image_writes_an_oci_layout_naming_it() {
        let layer = Blob::new(MediaType::ImageLayer, vec![0; 1024]);
        let diff = sha256_digest(&layer.bytes);
        let image = Image::assemble(
            "127.0.0.1:5000/x:1".into(),
            config(&[&diff]),
            vec![layer.clone()],
        );
        assert_eq!(image.diff_ids().unwrap(), [diff]);
        let Document::Manifest(manifest) = Document::parse(&image.manifest.bytes).unwrap() else {
            panic!("an assembled manifest is a manifest");
        };
        assert_eq!(manifest.layers()[0].digest().as_ref(), layer.digest);
        assert_eq!(manifest.config().digest().as_ref(), image.config.digest);

        let dir = tempfile::tempdir().unwrap();
        image.write_oci_layout(dir.path()).unwrap();
        let Document::Index(index) =
            Document::parse(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap()
        else {
            panic!("index.json is an index");
        };
        let entry = &index.manifests()[0];
        assert_eq!(
            entry.annotations().as_ref().unwrap()[ANNOTATION_REF_NAME],
            "127.0.0.1:5000/x:1"
        );
        assert_eq!(entry.digest().as_ref(), image.manifest.digest);
        let hex = layer.digest.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(dir.path().join("blobs/sha256").join(hex)).unwrap(),
            layer.bytes
        );
    }

    #[test]
    fn diff_ids_must_match_the_layers() {
        let layer = Blob::new(MediaType::ImageLayer, vec![1]);
        let image = Image::assemble("x".into(), config(&[]), vec![layer]);
        let e = image.diff_ids().unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("0 layers, the manifest 1"), "{e}");
    }

    #[test]
    fn documents_are_told_apart_by_their_fields() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(Document::parse(index), Ok(Document::Index(_))));
        let neither = br#"{"schemaVersion":2}"#;
        assert!(Document::parse(neither).unwrap_err().contains("neither"));
        let broken = br#"{"schemaVersion":2,"config":{"digest":"sha256:x"},"layers":[]}"#;
        assert!(
            Document::parse(broken)
                .unwrap_err()
                .contains("manifest does not parse")
        );
    }
}
