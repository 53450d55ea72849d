//! Importing and pulling images into containerd the way containerd 1.6 clients do (it has no
//! server-side import or pull): the blobs go into the content store, a manifest ties them
//! together, each layer is applied through the diff service onto a snapshot named by its chain
//! id, and an image record names the manifest. All of it happens under a lease, so containerd's
//! garbage collector cannot take a blob before the image refers to it.
//!
//! An import assembles an OCI manifest for the archive's blobs (`berth-oci` reads the archive and
//! checks its digests); a pull keeps the registry's manifest byte for byte, so the image's
//! digest is the one the registry shows.

use std::collections::HashMap;
use std::path::Path;

use berth_core::{ContainerBackend, Error, ImageInfo, PullEvent, PullProgress, Result};
use berth_oci::archive::Source;
use berth_oci::digest::{chain_id, short};
use berth_oci::image::{Blob, Image as OciImage};
use containerd_client::services::v1::{
    CreateImageRequest, Image, UpdateImageRequest, WriteAction, WriteContentRequest,
    content_client::ContentClient, diff_client::DiffClient, images_client::ImagesClient,
    leases_client::LeasesClient, snapshots,
};
use containerd_client::tonic::{Code, Request};
use containerd_client::types::Descriptor;

use crate::ContainerdBackend;

fn descriptor(blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.to_string(),
        digest: blob.digest.clone(),
        size: blob.bytes.len() as i64,
        annotations: HashMap::new(),
    }
}

impl ContainerdBackend {
    /// `message` in the configured namespace and under `lease`.
    fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut request = self.request(message);
        if let Ok(value) = lease.parse() {
            request.metadata_mut().insert("containerd-lease", value);
        }
        request
    }

    pub(crate) async fn import_archive(
        &self,
        path: &Path,
        name: Option<&str>,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let scratch = self.store.run_dir().join("containerd-import");
        berth_core::store::create_dir_all(&scratch)?;
        let source = Source::open(path, &scratch)?;
        let plan = berth_oci::layout::plan(&source)?;
        let name = name
            .map(String::from)
            .or(plan.name.clone())
            .ok_or_else(|| {
                Error::invalid(
                    format!("image archive {}", path.display()),
                    "it records no image name",
                )
                .with_hint("give one: `berth image import FILE NAME`")
            })?;
        let image = plan.into_image(&source, berth_oci::normalise(&name)?)?;
        self.store_image(&image, progress).await
    }

    /// Pulls `reference` from its registry: the blobs are fetched and checked by
    /// `berth-registry`, then stored and unpacked as an import is.
    pub(crate) async fn pull(
        &self,
        reference: &str,
        access: &berth_core::RegistryAccess,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let image = berth_registry::pull(reference, access, progress).await?;
        let info = self.store_image(&image, progress).await?;
        progress.event(&PullEvent {
            status: format!("Digest: {}", image.manifest.digest),
            ..Default::default()
        });
        Ok(info)
    }

    /// Writes and unpacks an image's blobs under a lease, then names it.
    async fn store_image(
        &self,
        image: &OciImage,
        progress: &mut dyn PullProgress,
    ) -> Result<ImageInfo> {
        let name = image.name.as_str();
        let diff_ids = image.diff_ids()?;
        let top = chain_id(&diff_ids)
            .ok_or_else(|| Error::invalid(format!("image {name}"), "it has no layers"))?;
        let mut leases = LeasesClient::new(self.channel().await?);
        let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let lease = leases
            .create(
                self.request(containerd_client::services::v1::CreateRequest {
                    id: format!("berth-import-{}", crate::nanos()),
                    labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
                }),
            )
            .await
            .map_err(|e| self.error("import", name, e))?
            .into_inner()
            .lease
            .map(|l| l.id)
            .unwrap_or_default();
        let imported = self
            .import_under(&lease, image, &diff_ids, &top, progress)
            .await;
        let _ = leases
            .delete(
                self.request(containerd_client::services::v1::DeleteRequest {
                    id: lease,
                    sync: false,
                }),
            )
            .await;
        imported?;
        self.inspect_image(name).await
    }

    async fn import_under(
        &self,
        lease: &str,
        image: &OciImage,
        diff_ids: &[String],
        top: &str,
        progress: &mut dyn PullProgress,
    ) -> Result<()> {
        let OciImage {
            name,
            manifest,
            config,
            layers,
        } = image;
        for layer in layers {
            let size = layer.bytes.len() as u64;
            let loading = |current| PullEvent {
                layer: Some(short(&layer.digest)),
                status: "Loading layer".into(),
                current: Some(current),
                total: Some(size),
            };
            progress.event(&loading(0));
            self.write_blob(lease, layer, HashMap::new()).await?;
            progress.event(&loading(size));
        }
        // The config keeps the unpacked layers, the manifest keeps the config and the layers.
        let snapshot_ref = format!("containerd.io/gc.ref.snapshot.{}", self.config.snapshotter);
        self.write_blob(
            lease,
            config,
            HashMap::from([(snapshot_ref, top.to_string())]),
        )
        .await?;
        let mut refs = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_string(),
            config.digest.clone(),
        )]);
        for (i, layer) in layers.iter().enumerate() {
            refs.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                layer.digest.clone(),
            );
        }
        self.write_blob(lease, manifest, refs).await?;
        self.unpack(lease, layers, diff_ids, progress).await?;

        let image = Image {
            name: name.to_string(),
            target: Some(descriptor(manifest)),
            ..Default::default()
        };
        let mut images = ImagesClient::new(self.channel().await?);
        let created = images
            .create(self.leased(
                CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                lease,
            ))
            .await;
        match created {
            Ok(_) => Ok(()),
            // Re-importing under a taken name moves the name, as docker load does.
            Err(e) if e.code() == Code::AlreadyExists => images
                .update(self.leased(
                    UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    },
                    lease,
                ))
                .await
                .map(drop)
                .map_err(|e| self.error("import", name, e)),
            Err(e) => Err(self.error("import", name, e)),
        }
    }

    /// Writes `blob` into the content store with `labels`; one already there is kept.
    async fn write_blob(
        &self,
        lease: &str,
        blob: &Blob,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let total = blob.bytes.len() as i64;
        let reference = format!("berth-{}", blob.digest);
        let mut messages = Vec::new();
        let mut offset = 0;
        for chunk in blob.bytes.chunks(1 << 20) {
            messages.push(WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total,
                expected: blob.digest.clone(),
                offset,
                data: chunk.to_vec(),
                labels: HashMap::new(),
            });
            offset += chunk.len() as i64;
        }
        messages.push(WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total,
            expected: blob.digest.clone(),
            offset,
            data: Vec::new(),
            labels,
        });
        let mut content = ContentClient::new(self.channel().await?);
        let written = async {
            let mut answers = content
                .write(self.leased(futures_util::stream::iter(messages), lease))
                .await?
                .into_inner();
            while answers.message().await?.is_some() {}
            Ok::<_, containerd_client::tonic::Status>(())
        };
        match written.await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Code::AlreadyExists => Ok(()),
            Err(e) => Err(self.error("write", &blob.digest, e)),
        }
    }

    /// Applies each layer onto its parent as snapshot `<chain id>`, skipping those unpacked.
    async fn unpack(
        &self,
        lease: &str,
        layers: &[Blob],
        diff_ids: &[String],
        progress: &mut dyn PullProgress,
    ) -> Result<()> {
        let existing: Vec<String> = self
            .list_snapshots()
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut parent = String::new();
        for (i, layer) in layers.iter().enumerate() {
            let chain = chain_id(&diff_ids[..=i]).expect("at least one layer");
            let step = |status: &str| PullEvent {
                layer: Some(short(&layer.digest)),
                status: status.into(),
                ..PullEvent::default()
            };
            if existing.contains(&chain) {
                progress.event(&step("Already exists"));
                parent = chain;
                continue;
            }
            progress.event(&step("Extracting"));
            let key = format!("berth-unpack-{}-{i}", crate::nanos());
            let mut snapshots = self.snapshots().await?;
            let mounts = snapshots
                .prepare(self.leased(
                    snapshots::PrepareSnapshotRequest {
                        snapshotter: self.config.snapshotter.clone(),
                        key: key.clone(),
                        parent: parent.clone(),
                        labels: HashMap::new(),
                    },
                    lease,
                ))
                .await
                .map_err(|e| self.error("prepare", &key, e))?
                .into_inner()
                .mounts;
            let applied = DiffClient::new(self.channel().await?)
                .apply(self.leased(
                    containerd_client::services::v1::ApplyRequest {
                        diff: Some(descriptor(layer)),
                        mounts,
                        payloads: HashMap::new(),
                        sync_fs: false,
                    },
                    lease,
                ))
                .await;
            let applied = match applied {
                Ok(applied) => applied.into_inner().applied.map(|d| d.digest),
                Err(e) => {
                    let _ = self.discard_snapshot(&key).await;
                    return Err(self.error("unpack", &layer.digest, e));
                }
            };
            if applied.as_deref() != Some(diff_ids[i].as_str()) {
                let _ = self.discard_snapshot(&key).await;
                return Err(Error::Corrupt {
                    what: "image layer".into(),
                    path: layer.digest.clone().into(),
                    message: format!(
                        "it unpacks to {}, its config says {}",
                        applied.unwrap_or_default(),
                        diff_ids[i]
                    ),
                    hint: "the archive is damaged; export the image again".into(),
                });
            }
            snapshots
                .commit(self.leased(
                    snapshots::CommitSnapshotRequest {
                        snapshotter: self.config.snapshotter.clone(),
                        name: chain.clone(),
                        key: key.clone(),
                        labels: HashMap::new(),
                    },
                    lease,
                ))
                .await
                .map_err(|e| self.error("commit", &key, e))?;
            progress.event(&step("Loaded"));
            parent = chain;
        }
        Ok(())
    }
}
