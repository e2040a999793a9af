//! `wss://` over real TCP on 127.0.0.1, with certificates made for the test:
//! the client trusts a given CA and checks the host name, refuses a server
//! it has no reason to trust with a TLS error, and a server drops a peer
//! that never starts the TLS handshake after `handshake_timeout`.
#![cfg(feature = "tls")]

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::sync::Arc;
use std::time::Duration;

use common::{echo, within, WAIT};
use pki::Pki;
use switchboard_net::tls::{self, rustls::ServerConfig};
use switchboard_net::{connect_with, AcceptAll, CloseCode, Config, ConnectOptions, Message};
use tokio::net::{TcpListener, TcpStream};

/// Serves `tls` on a fresh port, echoing every message; the address.
async fn serve_tls(tls: Arc<ServerConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Ok(Some(accepted)) =
                    tls::accept(stream, tls, &Config::default(), &AcceptAll).await
                {
                    echo(accepted).await;
                }
            });
        }
    });
    addr
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    tls::server_config_from_pem_files(&pki.cert, &pki.key).expect("server config")
}

fn trusting(pki: &Pki) -> ConnectOptions {
    ConnectOptions::default().tls(tls::client_config_from_ca_file(&pki.ca).expect("CA file"))
}

#[tokio::test]
async fn wss_echo_by_name_and_by_address() {
    let pki = Pki::new("wss test CA");
    let addr = serve_tls(server_config(&pki)).await;
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/", addr.port());
        let (mut socket, _) = within(WAIT, "connect", connect_with(&url, trusting(&pki)))
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        socket.send(Message::text(host)).await.expect("send");
        let big = Message::binary(vec![7u8; 300_000]);
        socket
            .send(big.clone())
            .await
            .expect("send a large message");
        let echoed = within(WAIT, "echo", socket.recv()).await;
        assert_eq!(echoed.unwrap().unwrap(), Message::text(host));
        let echoed = within(WAIT, "echo of the large message", socket.recv()).await;
        assert_eq!(echoed.unwrap().unwrap(), big, "records reassembled");
        socket.close(CloseCode::NORMAL, "bye").await.expect("close");
    }
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_a_tls_error() {
    let server = Pki::new("the server's CA");
    let other = Pki::new("some other CA");
    let addr = serve_tls(server_config(&server)).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let error = within(WAIT, "connect", connect_with(&url, trusting(&other)))
        .await
        .expect_err("an untrusted server");
    assert!(error.is_tls(), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("TLS error") && text.contains("certificate"),
        "{text}"
    );
    // With no CA given, the built-in roots do not know a test CA either.
    let error = within(
        WAIT,
        "connect",
        connect_with(&url, ConnectOptions::default()),
    )
    .await
    .expect_err("a test CA is not among the built-in roots");
    assert!(error.is_tls(), "{error:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_tls_error() {
    let pki = Pki::new("name test CA");
    pki.issue("name test CA", &["example.test"]);
    let addr = serve_tls(server_config(&pki)).await;
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let error = within(WAIT, "connect", connect_with(&url, trusting(&pki)))
        .await
        .expect_err("the certificate does not name 127.0.0.1");
    assert!(error.is_tls(), "{error:?}");
}

#[tokio::test]
async fn plain_ws_to_a_tls_port_fails_cleanly() {
    let pki = Pki::new("plain test CA");
    let addr = serve_tls(server_config(&pki)).await;
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let result = within(
        WAIT,
        "connect",
        connect_with(&url, ConnectOptions::default()),
    )
    .await;
    assert!(result.is_err(), "HTTP to a TLS port is not a WebSocket");
}

#[tokio::test]
async fn a_peer_that_never_sends_a_client_hello_is_dropped() {
    let pki = Pki::new("silent test CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let _silent = TcpStream::connect(addr).await.expect("connect");
    let (stream, _) = listener.accept().await.expect("accept");
    let mut config = Config::default();
    config.handshake_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let result = within(
        WAIT,
        "the TLS handshake gives up",
        tls::accept(stream, server_config(&pki), &config, &AcceptAll),
    )
    .await;
    let Err(error) = result else {
        panic!("a handshake without a ClientHello");
    };
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn unusable_files_are_tls_errors_naming_the_file() {
    let pki = Pki::new("files test CA");
    let missing = pki.dir.join("missing.pem");
    let error = tls::server_config_from_pem_files(&missing, &pki.key).unwrap_err();
    assert!(
        error.is_tls() && error.to_string().contains("missing.pem"),
        "{error}"
    );
    // A key that is not the certificate's.
    let error = tls::server_config_from_pem_files(&pki.ca, &pki.key).unwrap_err();
    assert!(
        error.is_tls() && error.to_string().contains("key.pem with"),
        "{error}"
    );
    // A certificate where the key should be.
    let error = tls::server_config_from_pem_files(&pki.cert, &pki.cert).unwrap_err();
    assert!(error.to_string().contains("no PEM private key"), "{error}");
    // A key where a certificate should be.
    let error = tls::client_config_from_ca_file(&pki.key).unwrap_err();
    assert!(error.to_string().contains("no PEM certificate"), "{error}");
}
