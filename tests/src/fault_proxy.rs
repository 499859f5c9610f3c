//! A TCP proxy in front of a server of the stack that a test can cut: while it is cut, the
//! connections through it are closed and new ones are closed as soon as they open, as a server
//! that went away. Only the processes pointed at the proxy see the outage; the stack stays up
//! for every other test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A proxy to one address.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    refused: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port to `target` (`host:port`, or an `http://` URL).
    pub async fn start(target: &str) -> Self {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if state.cut.load(Ordering::SeqCst) {
                    state.refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let connection = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let mut client = client;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                let mut connections = state.connections.lock().expect("proxy lock");
                connections.retain(|c| !c.is_finished());
                connections.push(connection);
            }
        });
        FaultProxy {
            address,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:<port>`, to point a client at.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Closes every connection through the proxy, and every new one from now on.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for connection in self
            .shared
            .connections
            .lock()
            .expect("proxy lock")
            .drain(..)
        {
            connection.abort();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Connections closed at once because the proxy was cut.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
