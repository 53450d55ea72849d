//! The CRI image service, on the engine's image backend (the first configured one): list,
//! status, pull, remove and the image filesystem's use. Images are named as the backend
//! names them; ids are `sha256:<hex>`, as kubelets expect.

use std::sync::Arc;

use berth_core::{Credentials, ErrorKind, ImageInfo, PullEvent, PullProgress};
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::api::image_service_server::ImageService;
use crate::api::{
    AuthConfig, FilesystemIdentifier, FilesystemUsage, Image, ImageFsInfoRequest,
    ImageFsInfoResponse, ImageSpec, ImageStatusRequest, ImageStatusResponse, Int64Value,
    ListImagesRequest, ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse, UInt64Value,
};

pub struct Images {
    shared: Arc<Shared>,
}

impl Images {
    pub(crate) fn new(shared: Arc<Shared>) -> Images {
        Images { shared }
    }
}

/// The image a request names; a request without one is the caller's mistake.
/// The kubelet's pull secret, as berth's credentials; none when it sent none (berth then
/// pulls as the serving user's `berth login`, else anonymously).
fn credentials(auth: &AuthConfig) -> Option<Credentials> {
    let given = |s: &str| !s.is_empty();
    if given(&auth.registry_token) {
        Some(Credentials::RegistryToken(auth.registry_token.clone()))
    } else if given(&auth.identity_token) {
        Some(Credentials::IdentityToken(auth.identity_token.clone()))
    } else if given(&auth.username) {
        Some(Credentials::Password {
            username: auth.username.clone(),
            password: auth.password.clone(),
        })
    } else if given(&auth.auth) {
        berth_registry::credentials::decode_auth(&auth.auth)
    } else {
        None
    }
}

fn reference(spec: Option<ImageSpec>) -> Result<String, Status> {
    spec.map(|s| s.image)
        .filter(|image| !image.is_empty())
        .ok_or_else(|| Status::invalid_argument("the request names no image (image.image)"))
}

/// `sha256:<hex>` for a content id, the id as it is otherwise.
fn image_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256:{id}")
    } else {
        id.to_string()
    }
}

fn image(info: &ImageInfo) -> Image {
    let (uid, username) = image_user(info.user.as_deref());
    Image {
        id: image_id(&info.id),
        repo_tags: info.names.clone(),
        size: info.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        ..Image::default()
    }
}

/// The CRI's reading of an image's `User` (containerd's): a number is the uid, anything else
/// the user name; a `:group` after either is not the CRI's concern.
fn image_user(user: Option<&str>) -> (Option<i64>, String) {
    let Some(user) = user
        .and_then(|u| u.split(':').next())
        .filter(|u| !u.is_empty())
    else {
        return (None, String::new());
    };
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

/// Pulls report nothing over the CRI: the kubelet waits for the answer.
struct Quiet;

impl PullProgress for Quiet {
    fn event(&mut self, _: &PullEvent) {}
}

#[tonic::async_trait]
impl ImageService for Images {
    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let wanted = request
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|image| !image.is_empty());
        let engine = &self.shared.engine;
        let images = self
            .shared
            .call(async {
                match &wanted {
                    Some(reference) => match engine.inspect_image(None, reference).await {
                        Ok(info) => Ok(vec![info]),
                        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
                        Err(e) => Err(e),
                    },
                    None => engine.list_images(None).await,
                }
            })
            .await?;
        Ok(Response::new(ListImagesResponse {
            images: images.iter().map(image).collect(),
        }))
    }

    /// An image the backend lacks is an empty answer, not an error (the kubelet then pulls).
    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let reference = reference(request.into_inner().image)?;
        let engine = &self.shared.engine;
        let found = self
            .shared
            .call(async {
                match engine.inspect_image(None, &reference).await {
                    Ok(info) => Ok(Some(info)),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(Response::new(ImageStatusResponse {
            image: found.as_ref().map(image),
            ..ImageStatusResponse::default()
        }))
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let request = request.into_inner();
        let credentials = request.auth.as_ref().and_then(credentials);
        let reference = reference(request.image)?;
        let engine = &self.shared.engine;
        let pulled = self
            .shared
            .call(engine.pull_image(None, &reference, credentials, &mut Quiet))
            .await?;
        Ok(Response::new(PullImageResponse {
            image_ref: image_id(&pulled.id),
        }))
    }

    /// Idempotent: removing an image that is not there succeeds.
    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let reference = reference(request.into_inner().image)?;
        let reference = reference.strip_prefix("sha256:").unwrap_or(&reference);
        let engine = &self.shared.engine;
        self.shared
            .call(async {
                match engine.remove_image(None, reference, false).await {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            })
            .await?;
        Ok(Response::new(RemoveImageResponse {}))
    }

    /// The state dir's filesystem, where the backends keep their layers.
    async fn image_fs_info(
        &self,
        _: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let dir = &self.shared.engine.config.host.state_dir;
        let (used_bytes, inodes_used) = usage(dir).map_err(|e| {
            Status::internal(format!(
                "measuring the filesystem of {}: {e}",
                dir.display()
            ))
        })?;
        let timestamp = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Ok(Response::new(ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: dir.display().to_string(),
                }),
                used_bytes: Some(UInt64Value { value: used_bytes }),
                inodes_used: Some(UInt64Value { value: inodes_used }),
            }],
        }))
    }
}

/// Bytes and inodes in use on the filesystem holding `dir` (statvfs).
fn usage(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes only into `stat`, from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize;
    Ok((
        (stat.f_blocks - stat.f_bfree) * block,
        stat.f_files - stat.f_ffree,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_images_user_is_a_uid_or_a_name_as_the_cri_reads_it() {
        assert_eq!(image_user(Some("1002")), (Some(1002), String::new()));
        assert_eq!(image_user(Some("1003:users")), (Some(1003), String::new()));
        assert_eq!(image_user(Some("www-data")), (None, "www-data".into()));
        assert_eq!(
            image_user(Some("www-data:www-data")),
            (None, "www-data".into())
        );
        assert_eq!(image_user(Some("")), (None, String::new()));
        assert_eq!(image_user(None), (None, String::new()));
    }

    #[test]
    fn a_kubelets_pull_secret_becomes_berths_credentials() {
        let none = AuthConfig::default();
        assert_eq!(credentials(&none), None);
        let password = AuthConfig {
            username: "alice".into(),
            password: "s3cret".into(),
            ..AuthConfig::default()
        };
        let alice = Credentials::Password {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        assert_eq!(credentials(&password).as_ref(), Some(&alice));
        let encoded = AuthConfig {
            auth: "YWxpY2U6czNjcmV0".into(),
            ..AuthConfig::default()
        };
        assert_eq!(credentials(&encoded).as_ref(), Some(&alice));
        let token = AuthConfig {
            registry_token: "t".into(),
            ..password
        };
        assert_eq!(
            credentials(&token),
            Some(Credentials::RegistryToken("t".into()))
        );
    }
}
