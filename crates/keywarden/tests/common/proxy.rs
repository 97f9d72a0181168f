//! A TCP proxy the test controls, standing between a node and PostgreSQL or Redis, so a test
//! can cut a node off from a backend (and reconnect it) without stopping the shared service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    pub port: u16,
    /// `true` while connections are refused and existing ones are cut.
    cut: watch::Sender<bool>,
    accepting: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on an OS-chosen port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, watch) = watch::channel(false);
        let accepting = Arc::new(AtomicBool::new(true));
        let open = Arc::clone(&accepting);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if !open.load(Ordering::SeqCst) {
                    // Refused: closing at once looks like a service that is down.
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, target, watch.clone()));
            }
        });
        Self {
            port,
            cut,
            accepting,
            task,
        }
    }

    /// Cuts every open connection and refuses new ones, as an outage would.
    pub fn cut(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let _ = self.cut.send(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        let _ = self.cut.send(false);
        self.accepting.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}
