//! OCI images as every berth backend sees them, in one place so that no backend depends on
//! another and no rule is written twice: how an image is named ([`reference`]), how its
//! content is addressed ([`digest`]) and typed ([`media`]), which manifest this machine runs
//! ([`platform`]), what a container inherits from its config ([`config`]), image archives on
//! disk ([`archive`], [`layout`]) and in memory ([`image`]), and the OCI runtime spec a
//! container is started from ([`spec`], with [`user`] for the image's own user names), and the
//! host cgroups such a container and its pod get ([`cgroups`]).
//!
//! Descriptors, manifests, indexes and configs are `oci-spec`'s image types; only docker's
//! `manifest.json`, which is not OCI, has a struct of its own here.

pub mod archive;
pub mod cgroups;
pub mod config;
pub mod digest;
pub mod files;
pub mod image;
pub mod layout;
pub mod media;
pub mod platform;
pub mod reference;
pub mod spec;
pub mod user;

pub use config::ImageConfig;
pub use image::{Blob, Document, Image};
pub use reference::{Reference, normalise};
pub use user::{ImageFiles, LayerDirs};
