//! The links between hosts: every connection to a host's service passes through a proxy in
//! that host, which a schedule can cut, slow down or make lossy per pair of hosts.
//!
//! A cut pair behaves as a partition does on a real network: nothing is closed, bytes just
//! stop flowing both ways (new connections are accepted and then hear nothing), and they flow
//! again when the pair heals, unless an end gave up meanwhile. `tc netem` is not in this
//! kernel, so latency is added per chunk and loss is modelled as TCP sees it: a lost segment
//! costs a retransmission timeout (200 ms) before the bytes arrive.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a retransmission costs a lost segment.
const RETRANSMIT: Duration = Duration::from_millis(200);

/// An unordered pair of host indices.
pub type Pair = (usize, usize);

/// The pair `{a, b}`.
pub fn pair(a: usize, b: usize) -> Pair {
    (a.min(b), a.max(b))
}

/// The state of every link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Pairs that hear nothing of each other.
    pub cut: BTreeSet<Pair>,
    /// Added one-way latency per pair.
    pub delay: BTreeMap<Pair, Duration>,
    /// Probability that a chunk is "lost" (delayed by a retransmission) per pair.
    pub loss: BTreeMap<Pair, f64>,
}

/// The shared link table, changed by schedules and read by every proxy.
#[derive(Clone)]
pub struct Links {
    tx: Arc<watch::Sender<Table>>,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            tx: Arc::new(watch::channel(Table::default()).0),
        }
    }
}

impl Links {
    /// Changes the table.
    pub fn update(&self, f: impl FnOnce(&mut Table)) {
        self.tx.send_modify(f);
    }

    /// Cuts every pair of `a` × `b`.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        self.update(|t| {
            for x in a {
                for y in b {
                    if x != y {
                        t.cut.insert(pair(*x, *y));
                    }
                }
            }
        });
    }

    /// Heals every link and removes every delay and loss.
    pub fn heal_all(&self) {
        self.update(|t| *t = Table::default());
    }

    /// A copy of the current table.
    #[cfg(test)]
    pub fn table(&self) -> Table {
        self.tx.borrow().clone()
    }

    async fn wait_open(&self, p: Pair) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = rx.wait_for(|t| !t.cut.contains(&p)).await;
    }

    fn slowness(&self, p: Pair) -> (Duration, f64) {
        let t = self.tx.borrow();
        (
            t.delay.get(&p).copied().unwrap_or_default(),
            t.loss.get(&p).copied().unwrap_or(0.0),
        )
    }
}

/// Serves `addr:port` on the calling runtime (which must run in the host's namespace),
/// forwarding to `127.0.0.1:port` in that host. `hosts` maps source addresses to indices.
pub async fn serve(
    links: Links,
    hosts: Arc<Vec<Ipv4Addr>>,
    me: usize,
    addr: Ipv4Addr,
    port: u16,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from((addr, port))).await?;
    let mut seed = (u64::from(port) << 8) | me as u64;
    loop {
        let (inbound, from) = listener.accept().await?;
        let src = match from {
            SocketAddr::V4(v4) => hosts.iter().position(|h| *h == *v4.ip()),
            SocketAddr::V6(_) => None,
        };
        // A connection from an unknown address (none is expected) is never cut.
        let p = pair(src.unwrap_or(me), me);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let links = links.clone();
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            links.wait_open(p).await;
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await else {
                return;
            };
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            let up = tokio::spawn(pump(ri, wo, links.clone(), p, seed));
            let down = tokio::spawn(pump(ro, wi, links, p, seed ^ 0x9e37_79b9));
            let _ = tokio::join!(up, down);
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    links: Links,
    p: Pair,
    seed: u64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        links.wait_open(p).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let (delay, loss) = links.slowness(p);
        let mut wait = delay;
        if loss > 0.0 && rng.gen_bool(loss.min(1.0)) {
            wait += RETRANSMIT;
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        // Bytes read before a cut are held until it heals, as a partitioned network would.
        links.wait_open(p).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_every_cross_pair_and_heal_removes_them() {
        let links = Links::default();
        links.partition(&[0], &[1, 2]);
        assert_eq!(
            links.table().cut,
            BTreeSet::from([pair(0, 1), pair(0, 2)]),
            "the minority is cut from both, the majority stays joined"
        );
        assert!(!links.table().cut.contains(&pair(1, 2)));
        links.update(|t| {
            t.delay.insert(pair(1, 2), Duration::from_millis(5));
        });
        links.heal_all();
        assert_eq!(links.table(), Table::default());
    }
}
