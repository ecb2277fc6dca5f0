//! A loopback TCP relay for drills: sits between a client and PostgreSQL
//! and can be cut (every relayed connection closed, new ones refused) and
//! restored, so "the database went away" is tested without stopping the
//! shared database server.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A loopback TCP relay between the store and PostgreSQL that the test can
/// cut (closing every relayed connection and refusing new ones) and restore:
/// the database "goes away" without stopping the shared server.
pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        // The accept loop lives as long as the test process (a blocked
        // accept on a loopback listener costs nothing).
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                {
                    let mut c = conns2.lock().unwrap();
                    c.push(client.try_clone().unwrap());
                    c.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, up, conns }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The relay's target: host and port of a `postgres://` URL (TCP only).
pub fn upstream_of(url: &str) -> SocketAddr {
    let config: postgres::Config = url.parse().expect("a postgres URL");
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("the drill needs a TCP PostgreSQL URL, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolvable host")
        .next()
        .expect("an address")
}

/// `url` rewritten to go through the relay at `addr` (TLS off: loopback).
pub fn via_relay(url: &str, addr: SocketAddr) -> String {
    let config: postgres::Config = url.parse().expect("a postgres URL");
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}:{password}@{addr}/{dbname}?sslmode=disable")
}
