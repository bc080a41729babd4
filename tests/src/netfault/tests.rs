//! Relays over real UDP sockets on loopback.

use super::*;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Two "nodes": bound sockets registered with relays in front of them.
async fn pair(net: &Network) -> (UdpSocket, UdpSocket, SocketAddr) {
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    net.add_node(1, a.local_addr().unwrap()).unwrap();
    let b_relay = net.add_node(2, b.local_addr().unwrap()).unwrap();
    (a, b, b_relay)
}

async fn receive(sock: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await.ok()?.ok()?;
    Some((buf[..got.0].to_vec(), got.1))
}

#[tokio::test]
async fn requests_and_answers_pass_the_relay_and_cuts_are_directed() {
    let net = Network::new(1);
    let (a, b, b_relay) = pair(&net).await;

    a.send_to(b"ping", b_relay).await.unwrap();
    let (msg, from) = receive(&b).await.expect("relayed to b");
    assert_eq!(msg, b"ping");
    b.send_to(b"pong", from).await.unwrap();
    let (msg, from) = receive(&a).await.expect("answer relayed to a");
    assert_eq!((msg.as_slice(), from), (&b"pong"[..], b_relay));

    // b → a cut: a's request still arrives, b's answer does not.
    net.cut_one_way(&[2], &[1]);
    a.send_to(b"ping", b_relay).await.unwrap();
    let (_, from) = receive(&b).await.expect("a → b still open");
    b.send_to(b"pong", from).await.unwrap();
    assert!(receive(&a).await.is_none(), "b → a is cut");

    net.partition(&[1], &[2]);
    a.send_to(b"ping", b_relay).await.unwrap();
    assert!(receive(&b).await.is_none(), "a → b is cut");

    assert_eq!(net.rule(1, 2), LinkRule::cut());
    net.heal();
    assert!(net.rule(1, 2).is_clean() && net.rule(2, 1).is_clean());
    a.send_to(b"ping", b_relay).await.unwrap();
    assert!(receive(&b).await.is_some(), "healed");
    let counts = net.counts();
    assert_eq!(counts.dropped, 2);
}

#[tokio::test]
async fn delayed_packets_arrive_late_and_can_be_reordered() {
    let net = Network::new(3);
    let (a, b, b_relay) = pair(&net).await;
    net.set(
        1,
        2,
        LinkRule {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(40),
            ..Default::default()
        },
    );
    let sent = Instant::now();
    for i in 0u8..20 {
        a.send_to(&[i], b_relay).await.unwrap();
    }
    let mut order = Vec::new();
    while let Some((msg, _)) = receive(&b).await {
        order.push(msg[0]);
        if order.len() == 20 {
            break;
        }
    }
    assert!(sent.elapsed() >= Duration::from_millis(50));
    assert_eq!(order.len(), 20, "delay loses nothing");
    assert!(
        order.windows(2).any(|w| w[0] > w[1]),
        "40 ms of jitter reorders 20 back-to-back packets: {order:?}"
    );
    assert_eq!(net.counts().delayed, 20);
}
