//! What a case gets: the target, unique user and channel ids for this run and rule, tokens
//! (minted with the secret or fetched from the token endpoint; forged ones only with the
//! secret), scripted users, the shared wire log, and the failure/skip vocabulary.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatstorm_protocol::connect::{AuthType, ConnectPayload, build_connect_request};
use chatstorm_protocol::token::{self, Claims};
use chatstorm_protocol::{Profile, User};
use serde_json::{Value, json};

use super::client::{Call, Http, HttpReply, Ws, WsEvent, event_type, one_line};
use super::wire::WireLog;
use crate::target::{Target, TargetAuth};

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseError {
    /// The rule was violated (or the target misbehaved so the case could not proceed).
    Fail {
        /// What the rule required.
        expected: String,
        /// What arrived instead.
        received: String,
        /// The user that saw it.
        user: Option<String>,
    },
    /// The case cannot run against this target.
    Skip(String),
}

/// A case's outcome.
pub type CaseResult = Result<(), CaseError>;

/// A failure seen by `user`.
pub fn fail(user: &str, expected: impl Into<String>, received: impl std::fmt::Display) -> CaseError {
    CaseError::Fail {
        expected: expected.into(),
        received: received.to_string(),
        user: Some(user.to_owned()),
    }
}

/// Fails with `expected` unless `cond` holds.
pub fn ensure(cond: bool, user: &str, expected: &str, received: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(fail(user, expected, received()))
    }
}

/// Everything one case runs with.
pub struct CaseCtx {
    /// The server under test.
    pub target: Target,
    /// Shared HTTP client.
    pub http: Http,
    /// The case's wire log (all users).
    pub log: WireLog,
    /// How long to wait for one expected frame or answer.
    pub wait: Duration,
    /// The health interval the suite expects from the server.
    pub health_interval: Duration,
    /// Requests the RATE probe may send.
    pub rate_probe: u32,
    /// `<run tag>-<rule tag>`: prefix of every id the case creates.
    prefix: String,
}

impl CaseCtx {
    /// A context for `rule_id` in the run tagged `run_tag`.
    pub fn new(
        target: Target,
        http: Http,
        run_tag: &str,
        rule_id: &str,
        health_interval: Duration,
        rate_probe: u32,
    ) -> Self {
        let rule: String = rule_id
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Self {
            target,
            http,
            log: WireLog::new(),
            wait: Duration::from_secs(5),
            health_interval,
            rate_probe,
            prefix: format!("cs{run_tag}-{rule}"),
        }
    }

    /// A user id unique to this run and case.
    pub fn user_id(&self, label: &str) -> String {
        format!("{}-{label}", self.prefix)
    }

    /// A channel cid unique to this run and case.
    pub fn cid(&self, label: &str) -> String {
        format!("messaging:{}-{label}", self.prefix)
    }

    /// The app secret, when the target gives one.
    pub fn secret(&self) -> Option<&[u8]> {
        match &self.target.auth {
            TargetAuth::Secret(s) => Some(s),
            TargetAuth::TokenEndpoint(_) => self.target.secret.as_deref(),
        }
    }

    /// Signs `claims` with the app secret, or skips the case when there is none.
    ///
    /// # Errors
    /// [`CaseError::Skip`] against a target known only by its token endpoint.
    pub fn forge(&self, claims: &Claims) -> Result<String, CaseError> {
        match self.secret() {
            Some(s) => Ok(token::sign(claims, s)),
            None => Err(CaseError::Skip(
                "needs tokens forged with the app secret; the target was given only a token endpoint".to_owned(),
            )),
        }
    }

    /// A valid token for `user_id`: minted (valid one hour) or fetched from the token endpoint.
    ///
    /// # Errors
    /// A failure when the token endpoint does not answer with a token.
    pub async fn valid_token(&self, user_id: &str) -> Result<String, CaseError> {
        match &self.target.auth {
            TargetAuth::Secret(s) => Ok(token::sign(&Claims::user(user_id, Some(now_unix() + 3600)), s)),
            TargetAuth::TokenEndpoint(url) => {
                let mut url = url.clone();
                url.query_pairs_mut().append_pair("user_id", user_id);
                let r = self
                    .http
                    .send(
                        &self.log,
                        user_id,
                        Call {
                            method: "GET",
                            url: url.as_str(),
                            headers: &[],
                            body: None,
                        },
                        self.wait,
                    )
                    .await
                    .map_err(|e| fail(user_id, "a token from the token endpoint", e))?;
                let tok = match &r.json {
                    Some(Value::Object(o)) => o.get("token").and_then(Value::as_str).map(str::to_owned),
                    Some(Value::String(s)) => Some(s.clone()),
                    _ => Some(r.text.trim().to_owned()),
                };
                match tok {
                    Some(t) if r.status < 300 && !t.is_empty() => Ok(t),
                    _ => Err(fail(user_id, "a token from the token endpoint", r.summary())),
                }
            }
        }
    }

    /// A scripted user labelled `label`, with a valid token, `user_details` `{id, name}`.
    ///
    /// # Errors
    /// When no token can be obtained.
    pub async fn user(self: &Arc<Self>, label: &str) -> Result<ScriptedUser, CaseError> {
        let id = self.user_id(label);
        let token = self.valid_token(&id).await?;
        let mut details = User::new(id.clone());
        details.name = Some(format!("conformance {label}"));
        Ok(ScriptedUser {
            ctx: Arc::clone(self),
            id,
            token,
            details,
            connection_id: None,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One scripted user of a case.
pub struct ScriptedUser {
    ctx: Arc<CaseCtx>,
    /// Its id.
    pub id: String,
    /// Its current token.
    pub token: String,
    /// The `user_details` it connects with.
    pub details: User,
    /// The connection id of its last successful connect (REST calls carry it).
    pub connection_id: Option<String>,
}

impl ScriptedUser {
    /// The case context.
    pub fn ctx(&self) -> &CaseCtx {
        &self.ctx
    }

    /// Opens `/connect` as `profile` with `token`, `json.user_id` = `user_id` and `user_details`.
    ///
    /// # Errors
    /// A failure when the upgrade is refused (the rules require every upgrade to complete).
    pub async fn open_raw(
        &self,
        profile: Profile,
        token: &str,
        user_id: &str,
        details: Value,
    ) -> Result<Ws, CaseError> {
        let payload = ConnectPayload {
            user_id: user_id.to_owned(),
            user_details: details,
            device: None,
            client_request_id: Some(uuid::Uuid::new_v4().to_string()),
            server_determines_connection_id: (profile != Profile::Js).then_some(true),
            user_token: None,
            x_stream_client: None,
        };
        let req = build_connect_request(profile, &self.ctx.target.api_key, token, AuthType::Jwt, &payload);
        let url = Target::join(&self.ctx.target.ws_base, &req.path_and_query);
        Ws::open(
            &self.ctx.log,
            &self.id,
            &url,
            &req.headers,
            self.ctx.wait,
            self.ctx.target.tls.as_ref(),
        )
        .await
        .map_err(|e| {
            fail(
                &self.id,
                "the /connect upgrade completes (HTTP 101); errors come as a frame after it (§1.4, §2.5)",
                e.detail,
            )
        })
    }

    /// Opens `/connect` as `profile` with its own token and details.
    ///
    /// # Errors
    /// As [`ScriptedUser::open_raw`].
    pub async fn open(&self, profile: Profile) -> Result<Ws, CaseError> {
        let details = serde_json::to_value(&self.details).unwrap_or(Value::Null);
        self.open_raw(profile, &self.token, &self.id, details).await
    }

    /// Connects (JS profile) and reads the first frame, which must be a `health.check` with a
    /// `connection_id`; remembers the id.
    ///
    /// # Errors
    /// A failure naming the first frame when it is anything else.
    pub async fn connect(&mut self) -> Result<(Ws, Value), CaseError> {
        self.connect_as(Profile::Js).await
    }

    /// Like [`ScriptedUser::connect`] for any profile.
    ///
    /// # Errors
    /// As [`ScriptedUser::connect`].
    pub async fn connect_as(&mut self, profile: Profile) -> Result<(Ws, Value), CaseError> {
        let mut ws = self.open(profile).await?;
        let first = ws.next(self.ctx.wait).await;
        let conn_id = first
            .json()
            .filter(|v| event_type(v) == Some("health.check"))
            .and_then(|v| v.get("connection_id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        match conn_id {
            Some(id) => {
                self.connection_id = Some(id.to_owned());
                let v = first.json().cloned().unwrap_or(Value::Null);
                Ok((ws, v))
            }
            None => Err(fail(
                &self.id,
                "first frame: a health.check carrying a connection_id (§1.5)",
                first.describe(),
            )),
        }
    }

    /// A REST call with the SDK's auth headers and `api_key`/`user_id`/`connection_id` query.
    ///
    /// # Errors
    /// A failure when the request gets no answer.
    pub async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> Result<HttpReply, CaseError> {
        self.rest_with_token(method, path, body, &self.token.clone()).await
    }

    /// Like [`ScriptedUser::rest`] with another token.
    ///
    /// # Errors
    /// As [`ScriptedUser::rest`].
    pub async fn rest_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
    ) -> Result<HttpReply, CaseError> {
        self.send_as(method, path, body, token, true).await
    }

    /// A REST call with `token`; `as_user` adds the client SDK's `user_id`/`connection_id`
    /// query parameters (server-side calls send only `api_key`).
    async fn send_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: &str,
        as_user: bool,
    ) -> Result<HttpReply, CaseError> {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("api_key", &self.ctx.target.api_key);
            if as_user {
                q.append_pair("user_id", &self.id);
                if let Some(c) = &self.connection_id {
                    q.append_pair("connection_id", c);
                }
            }
            q.finish()
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = Target::join(&self.ctx.target.http_base, &format!("{path}{sep}{query}"));
        let headers = vec![
            ("authorization".to_owned(), token.to_owned()),
            ("stream-auth-type".to_owned(), "jwt".to_owned()),
            ("x-stream-client".to_owned(), Profile::Js.user_agent().to_owned()),
        ];
        self.ctx
            .http
            .send(
                &self.ctx.log,
                &self.id,
                Call {
                    method,
                    url: &url,
                    headers: &headers,
                    body: body.as_ref(),
                },
                self.ctx.wait,
            )
            .await
            .map_err(|e| fail(&self.id, format!("an answer to {method} {path}"), e))
    }

    /// A REST call that must succeed (2xx).
    ///
    /// # Errors
    /// A failure naming the call and the answer otherwise.
    pub async fn rest_ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<HttpReply, CaseError> {
        let r = self.rest(method, path, body).await?;
        if (200..300).contains(&r.status) {
            Ok(r)
        } else {
            Err(fail(&self.id, format!("{method} {path} succeeds (2xx)"), r.summary()))
        }
    }

    /// Watches `cid` on the current connection (`POST /channels/{type}/{id}/query`, `watch:true`),
    /// creating it with `members`.
    ///
    /// # Errors
    /// A failure when the query does not succeed.
    pub async fn watch(&self, cid: &str, members: &[&str], presence: bool) -> Result<HttpReply, CaseError> {
        let body = json!({
            "data": {"members": members},
            "state": true, "watch": true, "presence": presence,
        });
        self.rest_ok("POST", &format!("/channels/{}/query", cid_path(cid)), Some(body))
            .await
    }

    /// Creates (or reads) `cid` with `members` without watching it (no connection needed).
    ///
    /// # Errors
    /// A failure when the query does not succeed.
    pub async fn create_channel(&self, cid: &str, members: &[&str]) -> Result<HttpReply, CaseError> {
        let body = json!({"data": {"members": members}, "state": true, "watch": false, "presence": false});
        self.rest_ok("POST", &format!("/channels/{}/query", cid_path(cid)), Some(body))
            .await
    }

    /// Sends `typing.start` or `typing.stop` to `cid` over HTTP (§7.1).
    ///
    /// # Errors
    /// A failure when the call does not succeed.
    pub async fn typing(&self, cid: &str, kind: &str) -> Result<HttpReply, CaseError> {
        let body = json!({"event": {"type": kind}});
        self.rest_ok("POST", &format!("/channels/{}/event", cid_path(cid)), Some(body))
            .await
    }

    /// Marks `cid` read (§7.2).
    ///
    /// # Errors
    /// A failure when the call does not succeed.
    pub async fn mark_read(&self, cid: &str) -> Result<HttpReply, CaseError> {
        self.rest_ok("POST", &format!("/channels/{}/read", cid_path(cid)), Some(json!({})))
            .await
    }

    /// Sets its own privacy settings with a partial update (`PATCH /users`, §6.2).
    ///
    /// # Errors
    /// A failure when the update does not succeed.
    pub async fn set_privacy(&self, typing: Option<bool>, read: Option<bool>) -> Result<HttpReply, CaseError> {
        let mut ps = serde_json::Map::new();
        if let Some(t) = typing {
            ps.insert("typing_indicators".into(), json!({"enabled": t}));
        }
        if let Some(r) = read {
            ps.insert("read_receipts".into(), json!({"enabled": r}));
        }
        let body = json!({"users": [{"id": self.id, "set": {"privacy_settings": ps}}]});
        // Server-side partial updates are always allowed; whether a user token may change its own
        // privacy settings is UNCONFIRMED (PROTOCOL.md §6.2), so a refusal skips the case.
        let r = match self.ctx.secret() {
            Some(secret) => {
                let server = token::sign(&Claims::server(), secret);
                self.send_as("PATCH", "/users", Some(body), &server, false).await?
            }
            None => self.rest("PATCH", "/users", Some(body)).await?,
        };
        match r.status {
            200..=299 => Ok(r),
            401 | 403 => Err(CaseError::Skip(format!(
                "PATCH /users of one's own privacy settings was refused ({}) and no secret was given for a server-side update",
                r.summary()
            ))),
            _ => Err(fail(&self.id, "PATCH /users succeeds (2xx)", r.summary())),
        }
    }
}

/// `messaging:abc` → `messaging/abc`.
pub fn cid_path(cid: &str) -> String {
    cid.replacen(':', "/", 1)
}

/// Waits on `ws` for an event of type `kind` from `from` (by `user.id`).
///
/// # Errors
/// A failure of `who` when it does not arrive.
pub async fn expect_event(
    ws: &mut Ws,
    who: &str,
    kind: &str,
    from: &str,
    wait: Duration,
    why: &str,
) -> Result<Value, CaseError> {
    ws.wait_for(wait, |v| event_type(v) == Some(kind) && user_of(v) == Some(from))
        .await
        .map_err(|e| fail(who, format!("{kind} from {from} ({why})"), e.describe()))
}

/// Reads `ws` until an event of `marker_kind` from `marker_from` arrives, failing if any event
/// matching `forbidden` arrives before it. The marker makes absence checkable without sleeps:
/// a server delivers one connection's events in order.
///
/// # Errors
/// A failure naming the forbidden event, or the missing marker.
pub async fn expect_absent_before(
    ws: &mut Ws,
    who: &str,
    marker_kind: &str,
    marker_from: &str,
    wait: Duration,
    expected: &str,
    mut forbidden: impl FnMut(&Value) -> bool,
) -> CaseResult {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next(left).await {
            WsEvent::Json(v) if forbidden(&v) => {
                return Err(fail(who, expected, one_line(&v.to_string(), 600)));
            }
            WsEvent::Json(v) if event_type(&v) == Some(marker_kind) && user_of(&v) == Some(marker_from) => {
                return Ok(());
            }
            WsEvent::Json(_) | WsEvent::NonJson(_) | WsEvent::Binary(_) => {}
            other => {
                return Err(fail(
                    who,
                    format!("{marker_kind} from {marker_from} (the ordering marker)"),
                    other.describe(),
                ));
            }
        }
    }
}

/// `user.id` of an event.
pub fn user_of(v: &Value) -> Option<&str> {
    v.get("user")?.get("id")?.as_str()
}
