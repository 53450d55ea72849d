//! `berth cri serve`: the Kubernetes CRI v1 runtime and image services on a unix socket, over
//! one engine that keeps its plugins loaded. A kubelet (or `crictl`, or critest) talks to it
//! as it would to containerd's CRI plugin, and what it asks for goes through berth's policy.
//!
//! Layout: [`api`] is the generated protocol; [`runtime`] answers the runtime service, with
//! sandboxes (berth pods) in [`sandboxes`] and containers (their apps) in [`containers`];
//! [`images`] answers the image service; [`meta`] keeps what the kubelet knows of each object
//! and makes berth names from it; [`status`] turns berth's errors into gRPC statuses. Calls
//! not answered here are `Unimplemented` (tonic's default stubs).
//!
//! Every call runs under its own plugin budget (`[pipeline] budget-ms`): calls are served
//! concurrently, each on its own task, and the budget is a task-local.

// tonic's handlers answer `Result<_, tonic::Status>`, and a Status is big by design.
#![allow(clippy::result_large_err)]

pub mod api {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runtime.v1");
}
mod containers;
mod images;
mod meta;
pub mod reload;
mod runtime;
mod sandboxes;
mod status;
mod streaming;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Error, Result};
use berth_engine::Engine;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use api::image_service_server::ImageServiceServer;
use api::runtime_service_server::RuntimeServiceServer;

/// The socket path of a `--listen` / `[cri] listen` address: `unix:///run/berth/cri.sock` or
/// a plain path.
pub fn socket_path(listen: &str) -> Result<PathBuf> {
    let path = listen.strip_prefix("unix://").unwrap_or(listen);
    if !path.starts_with('/') {
        return Err(Error::invalid(
            format!("CRI listen address {listen:?}"),
            "it is no unix socket path",
        )
        .with_hint("use unix:///run/berth/cri.sock or an absolute path"));
    }
    Ok(PathBuf::from(path))
}

/// Serves the CRI on `listen` until `shutdown` completes, then lets the calls in flight finish
/// and removes the socket. A socket another server still answers on is refused (73); a stale
/// one (its server gone) is replaced. The plugins load before the first call, and again from
/// `config()` on every SIGHUP ([`reload`]).
pub async fn serve(
    engine: Arc<Engine>,
    listen: &str,
    config: Box<dyn Fn() -> Result<berth_core::Config> + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let path = socket_path(listen)?;
    let listener = bind(&path).await?;
    let reloader = Arc::new(reload::Reloader::start(engine.clone(), config)?);
    let hangups = tokio::spawn(reloader.clone().on_hangup());
    let streaming =
        streaming::Streaming::start(engine.clone(), &engine.config.cri.stream_address).await?;
    tracing::info!(socket = %path.display(), "serving the CRI");
    let shared = Arc::new(Shared {
        budget: Duration::from_millis(engine.config.pipeline.budget_ms),
        engine,
        reloader: reloader.clone(),
        streaming,
    });
    let served = tonic::transport::Server::builder()
        .add_service(RuntimeServiceServer::new(runtime::Runtime::new(
            shared.clone(),
        )))
        .add_service(ImageServiceServer::new(images::Images::new(shared)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    hangups.abort();
    reloader.finish();
    let _ = std::fs::remove_file(&path);
    served.map_err(|e| {
        Error::io(
            format!("serving the CRI on {}", path.display()),
            std::io::Error::other(e),
        )
    })
}

async fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::conflict(
                format!("CRI socket {}", path.display()),
                "another server answers on it",
            )
            .with_hint("stop that server, or give `berth cri serve --listen` another path"));
        }
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("removing stale socket {}", path.display()), e))?;
    }
    UnixListener::bind(path).map_err(|e| Error::io(format!("listening on {}", path.display()), e))
}

/// A client channel to a CRI server on the unix socket `path` (what berth's tests and tools
/// speak to `berth cri serve` with).
pub async fn connect(path: &Path) -> Result<tonic::transport::Channel> {
    let socket = path.to_path_buf();
    // The URI is a placeholder: every connection goes to the socket.
    tonic::transport::Endpoint::from_static("http://berth.cri")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| {
            Error::io(
                format!("connecting to the CRI socket {}", path.display()),
                std::io::Error::other(e),
            )
        })
}

/// What every service shares: the engine, the plugin budget each call gets, and the state of
/// the plugins' reloads.
struct Shared {
    engine: Arc<Engine>,
    budget: Duration,
    reloader: Arc<reload::Reloader>,
    streaming: Arc<streaming::Streaming>,
}

impl Shared {
    /// Runs one call under a plugin budget of its own.
    async fn call<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T, tonic::Status> {
        berth_plugins::budget::within(self.budget, call)
            .await
            .map_err(|e| status::of(&e))
    }
}
