//! A TCP proxy on the loopback interface, standing between the code under test and a service
//! (PostgreSQL, Redis), so a test can make the service go away and come back, or hang, while
//! the shared service itself keeps running for every other test.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

pub struct TcpProxy {
    address: SocketAddr,
    target: SocketAddr,
    /// `true` while what clients send is held back.
    paused: watch::Sender<bool>,
    /// The accept loop while the proxy forwards; `None` while it is cut.
    running: Option<Running>,
    /// While cut: the port, bound but not listening, so connecting is refused and no other
    /// socket on the machine can take the port before [`TcpProxy::restore`].
    reserved: Option<TcpSocket>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let mut proxy = Self {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            target,
            paused: watch::Sender::new(false),
            running: None,
            reserved: None,
        };
        let socket = proxy.bind();
        proxy.address = socket.local_addr().expect("proxy address");
        proxy.listen_on(socket);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Closes every connection through the proxy and refuses new ones, as a service that went
    /// away would. Returns once the connections are closed, so what the test does next
    /// cannot slip through.
    pub async fn cut(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(());
        let _ = running.task.await;
        self.reserved = Some(self.bind());
    }

    /// Accepts connections again, on the same port.
    pub fn restore(&mut self) {
        if self.running.is_some() {
            return;
        }
        let socket = self.reserved.take().unwrap_or_else(|| self.bind());
        self.listen_on(socket);
    }

    /// Holds back everything clients send, keeping their connections open: a hung service.
    /// Replies already on their way still arrive.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Passes on what was held back, in order, and forwards as before.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// A socket bound to the proxy's address. Address reuse lets it bind the port again while
    /// connections the proxy closed linger in TIME_WAIT.
    fn bind(&self) -> TcpSocket {
        let socket = TcpSocket::new_v4().expect("proxy socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(self.address)
            .unwrap_or_else(|e| panic!("cannot bind the proxy to {}: {e}", self.address));
        socket
    }

    fn listen_on(&mut self, socket: TcpSocket) {
        let listener = socket.listen(1024).expect("proxy listen");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(
            listener,
            self.target,
            self.paused.subscribe(),
            stopped,
        ));
        self.running = Some(Running { stop, task });
    }
}

/// Forwards every connection `listener` accepts until told to stop (or the proxy is dropped,
/// which drops `stop`'s sender); then closes the listener and every connection, and returns.
async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    paused: watch::Receiver<bool>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(forward(client, target, paused.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Forwards one connection until either side closes it; requests wait while paused.
async fn forward(mut client: TcpStream, target: SocketAddr, mut paused: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    // The proxy should add no delay of its own to small requests and replies.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let requests = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if paused.wait_for(|paused| !paused).await.is_err() {
                return;
            }
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // What arrived just as the proxy paused is held back too.
            if paused.wait_for(|paused| !paused).await.is_err() {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let replies = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        () = requests => {}
        _ = replies => {}
    }
}
