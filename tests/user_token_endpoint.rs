//! The `provider` token mode backed by an HTTP token endpoint (wiremock): raw and JSON bodies, a
//! user connecting to the mock with endpoint tokens, a slow endpoint (timeouts, counted) and a
//! failing one (retried with back-off, counted, then served).

use chatstorm::metrics::{Counter, Recorder};
use chatstorm::target::{Target, TargetAuth};
use chatstorm::user::auth::{EndpointPolicy, TokenError, fetch_from_endpoint};
use chatstorm::user::{
    Behaviour, DeliveryTracker, SourceAddrs, State, TokenMode, TokenSpec, UserCtx, UserSpec, http, run_user,
};
use chatstorm_protocol::token::{Claims, sign};
use chatstorm_protocol::{PrivacySettings, Profile};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "endpoint_secret";

/// Mints a real token for the `user_id` of the query, as an app backend would.
struct Minter {
    json: bool,
}

impl Respond for Minter {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let user = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "user_id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let token = sign(&Claims::user(user, None), SECRET.as_bytes());
        if self.json {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "token": token }))
        } else {
            ResponseTemplate::new(200).set_body_string(token)
        }
    }
}

fn endpoint(server: &MockServer) -> url::Url {
    format!("{}/token", server.uri()).parse().unwrap()
}

#[tokio::test]
async fn raw_and_json_bodies_are_read() {
    for json in [false, true] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/token"))
            .and(query_param("user_id", "user-7"))
            .respond_with(Minter { json })
            .expect(1)
            .mount(&server)
            .await;
        let rec = Recorder::new();
        let t = fetch_from_endpoint(
            &endpoint(&server),
            &http::new_client(),
            &rec,
            "user-7",
            1,
            EndpointPolicy::default(),
        )
        .await
        .unwrap();
        let claims = chatstorm_protocol::token::verify(&t, SECRET.as_bytes(), 0).unwrap();
        assert_eq!(claims.user_id.as_deref(), Some("user-7"));
        assert_eq!(rec.counter(Counter::TokenFetchFailures), 0);
    }
}

#[tokio::test]
async fn a_slow_endpoint_times_out_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("a.b.c")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let rec = Recorder::new();
    let policy = EndpointPolicy {
        attempts: 2,
        timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    let r = fetch_from_endpoint(&endpoint(&server), &http::new_client(), &rec, "u", 3, policy).await;
    assert!(
        matches!(&r, Err(TokenError::Endpoint { attempts: 2, last }) if last.contains("timed out")),
        "{r:?}"
    );
    assert_eq!(rec.counter(Counter::TokenFetchFailures), 2);
    // Two 200 ms timeouts and one back-off of [250, 500) ms: far below the endpoint's 5 s delay.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_backoff_and_counted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(Minter { json: true })
        .expect(1)
        .mount(&server)
        .await;
    let rec = Recorder::new();
    let started = Instant::now();
    let t = fetch_from_endpoint(
        &endpoint(&server),
        &http::new_client(),
        &rec,
        "u",
        9,
        EndpointPolicy::default(),
    )
    .await;
    assert!(t.is_ok(), "{t:?}");
    assert_eq!(rec.counter(Counter::TokenFetchFailures), 2);
    // Back-offs after failures 1 and 2: at least 250 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_user_connects_with_endpoint_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(Minter { json: true })
        .mount(&server)
        .await;
    let mock = chatstorm_mock::start(chatstorm_mock::MockConfig {
        api_key: "k".into(),
        secret: SECRET.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let target = Target::new(
        mock.base_url().parse().unwrap(),
        "k".into(),
        TargetAuth::TokenEndpoint(endpoint(&server)),
        None,
    )
    .unwrap();
    let ctx = Arc::new(UserCtx {
        target,
        recorder: Recorder::new(),
        http: http::new_client(),
        source_addrs: SourceAddrs::none(),
        deliveries: DeliveryTracker::new(&["user-0".into()], &[]),
        observer: None,
        run_start: Instant::now(),
        run_over: tokio_util::sync::CancellationToken::new(),
    });
    let spec = UserSpec {
        index: 0,
        id: "user-0".into(),
        profile: Profile::Android,
        token: TokenSpec {
            mode: TokenMode::Provider,
            ttl: None,
        },
        privacy: PrivacySettings::default(),
        fallback: false,
        custom_bytes: 0,
        channels: vec![],
        behaviour: Behaviour::default(),
        seed: 5,
        intended_start: Some(Instant::now()),
        unity: Default::default(),
        fixed_backoff: None,
    };
    let (_tx, rx) = broadcast::channel(1);
    let cancel = CancellationToken::new();
    let user = tokio::spawn(run_user(spec, ctx.clone(), rx, cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctx.recorder.counter(Counter::Connects) == 0 {
        assert!(Instant::now() < deadline, "no connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    let rep = user.await.unwrap();
    assert!(rep.connected_ever && rep.final_state == State::Stopped);
    assert_eq!(ctx.recorder.counter(Counter::TokenFetches), 1);
    mock.shutdown().await;
}
