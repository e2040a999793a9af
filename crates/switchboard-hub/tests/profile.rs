//! What an endpoint adds to its connections through their `Admission`:
//! subscriptions taken before `ready` (every address message from then on
//! is delivered) and an answer after each message, as IS2 serves its
//! clients.

mod common;

use std::sync::Arc;

use common::{open, recv, send};
use serde_json::json;
use switchboard_hub::pattern::Pattern;
use switchboard_hub::{Admission, Hub, HubConfig};
use switchboard_net::{accept, Config, Decision, Handler, Request};
use tokio::net::TcpListener;

/// The hub's decision, plus IS2's profile on `/is2`.
struct Is2Endpoint(Hub);

impl Handler for Is2Endpoint {
    type Admission = Admission;

    async fn upgrade(&self, request: &Request, preferred: Option<&str>) -> Decision<Admission> {
        match self.0.admit(request) {
            Ok(mut admission) => {
                if request.path() == "/is2" {
                    admission
                        .subscribe(Pattern::parse("/**").unwrap())
                        .answer_each_message(json!({ "handshake": true }));
                }
                Decision::accept(preferred, admission)
            }
            Err(error) => Decision::Reject(error),
        }
    }
}

async fn serve(hub: Hub) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let handler = Arc::new(Is2Endpoint(hub.clone()));
    tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let (hub, handler) = (hub.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(Some(accepted)) = accept(stream, &Config::default(), &*handler).await {
                    hub.serve(accepted, Some(remote)).await;
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn an_endpoint_subscribes_its_connections_and_answers_each_message() {
    let hub = Hub::new(HubConfig::default());
    let base = serve(hub.clone()).await;
    let mut is2 = open(&format!("{base}/is2")).await;
    let mut plain = open(&format!("{base}/ws")).await;
    // Subscribed before its `ready`: a publish right after it arrives.
    assert_eq!(hub.publish("/any/where", &[json!(1)]), 1);
    assert_eq!(
        recv(&mut is2).await,
        json!({"path":"/any/where","values":[1]})
    );

    // A message from the IS2 connection: handled, then answered.
    send(&mut is2, json!({"path":"/x","value":[2],"ack":1})).await;
    assert_eq!(recv(&mut is2).await, json!({"path":"/x","values":[2]}));
    assert_eq!(recv(&mut is2).await["event"], "ack");
    assert_eq!(recv(&mut is2).await, json!({"handshake":true}));
    // Bad input too: the error first, then the answer.
    send(&mut is2, json!({"nothing":1})).await;
    assert_eq!(recv(&mut is2).await["data"]["code"], "invalid_message");
    assert_eq!(recv(&mut is2).await, json!({"handshake":true}));

    // The plain connection has neither.
    send(&mut plain, json!({"path":"/y","values":[3],"ack":1})).await;
    assert_eq!(
        recv(&mut plain).await,
        json!({"event":"ack","ack":1,"data":{"delivered":1}})
    );
    assert_eq!(recv(&mut is2).await, json!({"path":"/y","values":[3]}));
    send(&mut plain, json!({"event":"users","ack":2})).await;
    assert_eq!(recv(&mut plain).await["ack"], 2, "no answer before it");
}
