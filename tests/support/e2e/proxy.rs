//! A TCP forwarder standing in for a Kubernetes Service in front of control-plane replicas: Envoy
//! connects to it, and each new connection goes to whichever replica it points at now.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    address: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let target = Arc::new(Mutex::new(target));
        let current = target.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let to = *current.lock().unwrap();
                std::thread::spawn(move || {
                    if let Ok(upstream) = TcpStream::connect(to) {
                        relay(client, upstream);
                    }
                });
            }
        });
        Proxy { address, target }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// New connections go to `target` (open ones stay where they are).
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap() = target;
    }
}

/// Copies both ways until either side closes, then closes both.
fn relay(client: TcpStream, upstream: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| -> io::Result<()> {
        io::copy(&mut from, &mut to)?;
        to.shutdown(std::net::Shutdown::Both)?;
        from.shutdown(std::net::Shutdown::Both)
    };
    let (client_read, upstream_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    std::thread::spawn(move || copy(client_read, upstream_write));
    let _ = copy(upstream, client);
}
