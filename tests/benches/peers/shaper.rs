//! A user-space link shaper: a TCP proxy on loopback that paces the client→server direction to a
//! fixed rate (one token bucket shared by every connection, as one link), so a transfer can be
//! measured as goodput against a known link rate without root or a qdisc. Replies pass unpaced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// Bytes read and released at a time; the largest burst above the rate.
const CHUNK: usize = 16 * 1024;

/// A running shaper; stops when dropped.
pub struct Shaper {
    /// Port clients connect to on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forward connections on a new loopback port to `target`, pacing uploads to `mbit` Mbit/s.
pub async fn start(target: SocketAddr, mbit: f64) -> anyhow::Result<Shaper> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let bytes_per_s = mbit * 1e6 / 8.0;
    let next_free = Arc::new(Mutex::new(Instant::now()));
    let task = tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let next_free = next_free.clone();
            tokio::spawn(async move {
                if let Ok(outbound) = TcpStream::connect(target).await {
                    let _ = relay(inbound, outbound, bytes_per_s, next_free).await;
                }
            });
        }
    });
    Ok(Shaper { port, task })
}

async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    bytes_per_s: f64,
    next_free: Arc<Mutex<Instant>>,
) -> std::io::Result<()> {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let replies = tokio::spawn(async move { tokio::io::copy(&mut out_read, &mut in_write).await });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = in_read.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let release = {
            let mut free = next_free.lock().await;
            let start = (*free).max(Instant::now());
            *free = start + Duration::from_secs_f64(n as f64 / bytes_per_s);
            *free
        };
        tokio::time::sleep_until(release.into()).await;
        out_write.write_all(&buf[..n]).await?;
    }
    out_write.shutdown().await?;
    let _ = replies.await;
    Ok(())
}
