//! A TCP proxy on the loopback interface that a test can cut, to make a database go away
//! (every connection through it dropped, new ones refused) and come back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    accepting: Option<JoinHandle<()>>,
    piping: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Starts forwarding connections on a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = Self {
            address: listener.local_addr().unwrap(),
            target,
            accepting: None,
            piping: Arc::default(),
        };
        proxy.accept_on(listener);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Drops every connection and stops listening: connecting is refused from now on.
    pub fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for pipe in self.piping.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.accept_on(listener);
    }

    fn accept_on(&mut self, listener: TcpListener) {
        let (target, piping) = (self.target, Arc::clone(&self.piping));
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                piping.lock().unwrap().push(pipe);
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
