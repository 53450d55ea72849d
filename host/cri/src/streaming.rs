//! The CRI's streaming server: `Exec` answers a URL on it, and the client (a kubelet's proxy,
//! crictl, critest) opens that URL as a WebSocket speaking Kubernetes' channel protocol
//! (`v5.channel.k8s.io`, else `v4.channel.k8s.io`): every binary message starts with its
//! channel, 0 stdin, 1 stdout, 2 stderr, 3 the outcome as a Kubernetes `Status`, 4 terminal
//! resizes, and in v5 255 to close one (the client's end of stdin).
//!
//! `Attach` is served the same way, on the container's own stdio: its output from then on, and
//! stdin into it when it was created with one open; the client closing its stdin detaches.
//!
//! A URL is good for one connection within a minute, as the kubelet's own streaming server
//! has it. SPDY and port forwarding are not served yet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_core::{Error, ExecIo, ExecSpec, ExecStreams, Result};
use berth_engine::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::containers;

/// How long a URL `Exec` handed out stays good.
const URL_LIFETIME: Duration = Duration::from_secs(60);
/// How long a client has to finish its WebSocket handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What a URL stands for, waiting for its client to connect.
struct Pending {
    container: String,
    what: Session,
    made: Instant,
}

enum Session {
    Exec(ExecSpec),
    /// Attach, reading the client's stdin or not.
    Attach {
        stdin: bool,
    },
}

pub(crate) struct Streaming {
    engine: Arc<Engine>,
    address: SocketAddr,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Streaming {
    /// Listens on `address` (port 0: any free one) and serves connections until the process
    /// ends.
    pub async fn start(engine: Arc<Engine>, address: &str) -> Result<Arc<Streaming>> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| Error::io(format!("listening for CRI streams on {address}"), e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("reading the streaming address", e))?;
        let streaming = Arc::new(Streaming {
            engine,
            address,
            pending: Mutex::new(HashMap::new()),
        });
        let server = streaming.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let server = server.clone();
                        tokio::spawn(async move { server.serve(stream).await });
                    }
                    Err(e) => tracing::warn!(error = %e, "accepting a CRI stream"),
                }
            }
        });
        tracing::info!(%address, "serving CRI streams");
        Ok(streaming)
    }

    /// `Exec`: the URL its client opens, once the container is known to be the CRI's.
    pub fn exec_url(
        &self,
        container: &str,
        command: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> Result<String> {
        if command.is_empty() {
            return Err(crate::meta::missing("cmd"));
        }
        let spec = ExecSpec {
            command,
            interactive: stdin,
            tty,
            ..ExecSpec::default()
        };
        self.url(container, "exec", Session::Exec(spec))
    }

    /// `Attach`: the URL its client opens.
    pub fn attach_url(&self, container: &str, stdin: bool) -> Result<String> {
        self.url(container, "attach", Session::Attach { stdin })
    }

    fn url(&self, container: &str, kind: &str, what: Session) -> Result<String> {
        let (record, _) = containers::get(&self.engine, container)?;
        let token = berth_core::new_id()[..32].to_string();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.made.elapsed() < URL_LIFETIME);
        pending.insert(
            token.clone(),
            Pending {
                container: record.id,
                what,
                made: Instant::now(),
            },
        );
        Ok(format!("http://{}/{kind}/{token}", self.address))
    }

    fn take(&self, path: &str) -> Option<Pending> {
        let token = path
            .strip_prefix("/exec/")
            .or_else(|| path.strip_prefix("/attach/"))?;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .remove(token)
            .filter(|p| p.made.elapsed() < URL_LIFETIME)
    }

    /// One connection: the WebSocket handshake (refused for an unknown or used URL, or
    /// without a channel protocol berth speaks), then the exec on its channels.
    async fn serve(&self, stream: TcpStream) {
        let mut taken = None;
        let mut protocol = None;
        let negotiate = |request: &Request,
                         mut response: Response|
         -> std::result::Result<Response, ErrorResponse> {
            let offered: Vec<String> = request
                .headers()
                .get_all("Sec-WebSocket-Protocol")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
                .collect();
            let Some(chosen) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)) else {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "berth streams v5.channel.k8s.io or v4.channel.k8s.io over WebSocket",
                ));
            };
            let Some(pending) = self.take(request.uri().path()) else {
                return Err(refusal(
                    StatusCode::NOT_FOUND,
                    "unknown or expired stream URL",
                ));
            };
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(chosen));
            taken = Some(pending);
            protocol = Some(*chosen);
            Ok(response)
        };
        // A client that never finishes its handshake does not hold a task for long.
        let handshake = tokio_tungstenite::accept_hdr_async(stream, negotiate);
        let socket = match tokio::time::timeout(HANDSHAKE_LIMIT, handshake).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "refused a CRI stream");
                return;
            }
            Err(_) => return,
        };
        let (Some(pending), Some(protocol)) = (taken, protocol) else {
            return;
        };
        self.session(socket, pending, protocol == PROTOCOLS[0])
            .await;
    }

    async fn session(
        &self,
        socket: tokio_tungstenite::WebSocketStream<TcpStream>,
        pending: Pending,
        v5: bool,
    ) {
        let (mut to_client, mut from_client) = socket.split();
        let (stdout, stdout_out) = tokio::io::duplex(64 << 10);
        let (stderr, stderr_out) = tokio::io::duplex(64 << 10);
        let (mut stdin_in, stdin) = tokio::io::duplex(64 << 10);
        let (frames, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(16);

        let (sizes, resize) = tokio::sync::mpsc::channel(4);
        // The client's frames: stdin until it closes it (v5) or the connection, and terminal
        // sizes.
        let feed = tokio::spawn(async move {
            while let Some(Ok(message)) = from_client.next().await {
                let data = match message {
                    Message::Binary(data) => data,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some((&channel, payload)) = data.split_first() else {
                    continue;
                };
                if channel == STDIN {
                    if stdin_in.write_all(payload).await.is_err() {
                        break;
                    }
                } else if channel == RESIZE {
                    if let Some(size) = terminal_size(payload) {
                        let _ = sizes.try_send(size);
                    }
                } else if channel == CLOSE && v5 && payload.first() == Some(&STDIN) {
                    let _ = stdin_in.shutdown().await;
                }
            }
        });
        let copy = |mut from: tokio::io::DuplexStream, channel: u8| {
            let frames = frames.clone();
            async move {
                let mut buffer = vec![0u8; 32 << 10];
                loop {
                    match from.read(&mut buffer[1..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            buffer[0] = channel;
                            if frames.send(buffer[..=n].to_vec()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        };
        let stdout_copy = tokio::spawn(copy(stdout_out, STDOUT));
        let stderr_copy = tokio::spawn(copy(stderr_out, STDERR));
        drop(frames);
        let send = tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if to_client.send(Message::Binary(frame)).await.is_err() {
                    return None;
                }
            }
            Some(to_client)
        });

        let streams = ExecStreams {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            resize: Some(resize),
        };
        let outcome = match (self.engine.resolve(&pending.container), &pending.what) {
            (Ok(record), Session::Exec(spec)) => {
                self.engine
                    .exec(&record, spec, ExecIo::Streams(streams))
                    .await
            }
            (Ok(record), Session::Attach { stdin }) => {
                // The client closing its stdin detaches, as a kubelet's attach does.
                let stdin = match stdin {
                    true => berth_core::AttachStdin::UntilEnd,
                    false => berth_core::AttachStdin::Off,
                };
                self.engine
                    .attach(&record, streams, stdin)
                    .await
                    .map(|()| 0)
            }
            (Err(e), _) => Err(e),
        };
        let _ = stdout_copy.await;
        let _ = stderr_copy.await;
        feed.abort();
        let Ok(Some(mut to_client)) = send.await else {
            return;
        };
        let mut frame = vec![STATUS];
        let command = match &pending.what {
            Session::Exec(spec) => spec.command.clone(),
            Session::Attach { .. } => vec!["attach".into()],
        };
        frame.extend_from_slice(status(&command, &outcome).to_string().as_bytes());
        let _ = to_client.send(Message::Binary(frame)).await;
        // A normal close is each channel's end of file to the client (1005 would be an error).
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = to_client.send(Message::Close(Some(normal))).await;
        let _ = to_client.close().await;
    }
}

/// A resize message: `{"Width": W, "Height": H}`, as Kubernetes' remotecommand sends it.
fn terminal_size(payload: &[u8]) -> Option<berth_core::TerminalSize> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let size: Size = serde_json::from_slice(payload).ok()?;
    Some(berth_core::TerminalSize {
        rows: size.height,
        cols: size.width,
    })
}

fn refusal(code: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_string()));
    *response.status_mut() = code;
    response
}

/// The outcome as the Kubernetes `Status` the channel protocol ends with.
fn status(command: &[String], outcome: &Result<i32>) -> serde_json::Value {
    match outcome {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": e.to_string(),
            "reason": "InternalError",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_is_told_as_kubernetes_tells_it() {
        let command = vec!["false".to_string()];
        assert_eq!(status(&command, &Ok(0))["status"], "Success");
        let failed = status(&command, &Ok(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        let error = status(&command, &Err(Error::invalid("exec", "no")));
        assert_eq!(error["status"], "Failure");
    }
}
