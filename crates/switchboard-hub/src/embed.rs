//! The hub behind another HTTP server: an upgrade that reached a hyper
//! (or axum, or any hyper-based) server is decided by the hub — shutdown,
//! authorizer, `max_connections` — exactly as one it accepted itself, and
//! the connection then runs in the hub.

use std::net::SocketAddr;

use switchboard_net::upgrade::upgrade_with;
use switchboard_net::Config;

use crate::hub::Hub;

impl Hub {
    /// Answers an upgrade request that came through a hyper-based server
    /// and, once hyper hands the connection over, serves it in its own
    /// task ([`Hub::serve`]).
    ///
    /// Return the response to the server: a `101` when the hub admitted the
    /// connection; otherwise the refusal (`400`/`426` for a request that is
    /// not a valid upgrade, `503` while shutting down or at
    /// `max_connections`, the authorizer's status) with its reason as the
    /// body. `remote` is the peer's address, for per-address rate limits
    /// and [`Socket::remote_addr`](crate::Socket::remote_addr).
    ///
    /// ```no_run
    /// # async fn route(hub: switchboard_hub::Hub, mut request: http::Request<()>) {
    /// let config = switchboard_hub::net::Config::default();
    /// let response = hub.handle_upgrade(&mut request, &config, None).await;
    /// # drop(response);
    /// # }
    /// ```
    pub async fn handle_upgrade<B>(
        &self,
        request: &mut http::Request<B>,
        config: &Config,
        remote: Option<SocketAddr>,
    ) -> http::Response<String> {
        match upgrade_with(request, config, self).await {
            Ok((response, pending)) => {
                let hub = self.clone();
                tokio::spawn(async move {
                    match pending.accepted().await {
                        Ok(accepted) => hub.serve(accepted, remote).await,
                        Err(error) => tracing::debug!(%error, "upgrade not completed"),
                    }
                });
                response.map(|()| String::new())
            }
            Err(refusal) => *refusal,
        }
    }
}
