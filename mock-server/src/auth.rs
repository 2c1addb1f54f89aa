//! Owns authentication: the api key, the auth type, token verification (through `proto`), fault-API
//! revocations, and the connect payload checks shared by `/connect` and the long-poll connect.

use serde_json::{Map, Value};

use crate::app::App;
use crate::fault::Violation;
use crate::proto::{self, Claims, TokenPolicy};
use crate::wire::{self, code};

/// A request refused: the code and the detail of the message (`<Op> failed with error: "<detail>"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: i32,
    pub detail: String,
}

impl ApiError {
    pub fn new(code: i32, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
        }
    }
}

/// Who is calling a REST endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The acting user; empty for a server token without `user_id`.
    pub user: String,
    /// Authenticated with a server token (`{"server": true}`).
    pub server: bool,
}

/// The auth-relevant inputs of one request, from the query and the headers (a header wins).
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub api_key: Option<String>,
    pub token: Option<String>,
    pub auth_type: Option<String>,
    pub user_id: Option<String>,
}

/// Checks the api key (code 2).
pub fn check_key(app: &App, c: &Credentials) -> Result<(), ApiError> {
    if app.violation(Violation::SkipApiKeyCheck) {
        return Ok(());
    }
    match c.api_key.as_deref() {
        Some(k) if k == app.cfg.api_key => Ok(()),
        Some(k) => Err(ApiError::new(
            code::ACCESS_KEY,
            format!("api_key not found: \"{}\"", clip(k)),
        )),
        None => Err(ApiError::new(code::ACCESS_KEY, "api_key is a required query parameter")),
    }
}

/// Checks the auth type (code 5).
pub fn check_type(c: &Credentials) -> Result<(), ApiError> {
    match c.auth_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("jwt") => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("anonymous") => Err(ApiError::new(
            code::AUTH,
            "anonymous users are not supported by chatstorm-mock",
        )),
        _ => Err(ApiError::new(code::AUTH, "stream-auth-type missing or invalid")),
    }
}

/// Verifies the token and applies revocations; `user` is the user the token must belong to when known.
pub fn check_token(app: &App, token: Option<&str>, now: i64) -> Result<Claims, ApiError> {
    let token = match token {
        Some(t) if !t.is_empty() => t,
        _ => {
            return Err(ApiError::new(code::AUTH, "Authorization missing: a JWT is required"));
        }
    };
    if token.len() > app.cfg.max_token_bytes {
        // As an HTTP front end answers an oversized header line: the token is not even parsed.
        return Err(ApiError::new(
            chatstorm_protocol::ErrorCode::MAX_HEADER_SIZE_EXCEEDED.0,
            format!(
                "the token is {} bytes, over the {}-byte limit",
                token.len(),
                app.cfg.max_token_bytes
            ),
        ));
    }
    let policy = TokenPolicy {
        allow_dev_tokens: app.cfg.allow_dev_tokens,
        accept_alg_none: app.violation(Violation::AcceptAlgNone),
    };
    let claims = proto::verify_token(token, &app.cfg.secret, now, policy).map_err(|r| {
        let c = if r.expired && app.violation(Violation::WrongExpiredCode) {
            code::TOKEN_SIGNATURE_INVALID
        } else {
            r.code
        };
        ApiError::new(c, r.detail)
    })?;
    if let Some(user) = claims.user_id.as_deref()
        && let Some(revoked) = app.faults.revoked(user, claims.iat)
    {
        return Err(expired_error(app, revoked));
    }
    Ok(claims)
}

/// The code-40 error of an expired or revoked token (43 under `wrong_expired_code`).
pub fn expired_error(app: &App, revoked: bool) -> ApiError {
    let c = if app.violation(Violation::WrongExpiredCode) {
        code::TOKEN_SIGNATURE_INVALID
    } else {
        code::TOKEN_EXPIRED
    };
    if revoked {
        ApiError::new(c, "This token has been revoked, please generate a new token")
    } else {
        ApiError::new(c, "JWTAuth error: token is expired (exp)")
    }
}

/// Authenticates a REST call.
pub fn rest(app: &App, c: &Credentials) -> Result<Caller, ApiError> {
    check_key(app, c)?;
    check_type(c)?;
    let claims = check_token(app, c.token.as_deref(), wire::now_unix())?;
    if claims.server == Some(true) {
        return Ok(Caller {
            user: c.user_id.clone().unwrap_or_default(),
            server: true,
        });
    }
    let Some(user) = claims.user_id else {
        return Err(ApiError::new(
            code::AUTH,
            "JWTAuth error: the token has no user_id claim",
        ));
    };
    if let Some(q) = c.user_id.as_deref()
        && !q.is_empty()
        && q != user
    {
        return Err(ApiError::new(
            code::AUTH,
            "the user_id parameter does not match the token's user_id",
        ));
    }
    Ok(Caller { user, server: false })
}

/// A connect that passed every check.
#[derive(Debug, Clone)]
pub struct Connecting {
    pub user_id: String,
    pub details: Map<String, Value>,
    /// The token's `exp` (Unix seconds), for the `kick` expiry policy.
    pub exp: Option<i64>,
}

/// All checks of a connect (`/connect` or the long-poll connect), in the order the codes are
/// documented: api key (2), `json` and ids (4), auth type and token (5, 40-43), user size (4).
pub fn connect(app: &App, c: &Credentials, json: Option<&str>) -> Result<Connecting, ApiError> {
    check_key(app, c)?;
    let Some(json) = json else {
        return Err(ApiError::new(code::INPUT, "json is a required query parameter"));
    };
    let payload: Value = serde_json::from_str(json).map_err(|_| ApiError::new(code::INPUT, "invalid json data"))?;
    let Some(obj) = payload.as_object() else {
        return Err(ApiError::new(code::INPUT, "invalid json data"));
    };
    let user_id = match get_ci(obj, "user_id") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::new(code::INPUT, "user_id must be a string")),
        None => return Err(ApiError::new(code::INPUT, "user_id is a required field")),
    };
    proto::validate_user_id("user_id", &user_id).map_err(|m| ApiError::new(code::INPUT, m))?;
    let details = match get_ci(obj, "user_details") {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            return Err(ApiError::new(code::INPUT, "user_details is a required field"));
        }
    };
    if let Some(Value::String(id)) = get_ci(&details, "id")
        && *id != user_id
    {
        return Err(ApiError::new(code::INPUT, "user_details.id must equal user_id"));
    }
    check_type(c)?;
    let claims = check_token(app, c.token.as_deref(), wire::now_unix())?;
    if claims.server == Some(true) {
        return Err(ApiError::new(
            code::AUTH,
            "a server token cannot open a user connection",
        ));
    }
    match claims.user_id.as_deref() {
        Some(u) if u == user_id => {}
        Some(_) => {
            return Err(ApiError::new(
                code::AUTH,
                "the token's user_id does not match json.user_id",
            ));
        }
        None => {
            return Err(ApiError::new(
                code::AUTH,
                "JWTAuth error: the token has no user_id claim",
            ));
        }
    }
    let size = Value::Object(details.clone()).to_string().len();
    if size > app.cfg.user_size_limit {
        return Err(ApiError::new(
            code::INPUT,
            proto::user_size_error(size, app.cfg.user_size_limit),
        ));
    }
    Ok(Connecting {
        user_id,
        details,
        exp: claims.exp,
    })
}

/// The refusal a deactivated user's connects and writes (upsert, send message) get.
pub fn deactivated(id: &str) -> ApiError {
    ApiError::new(
        code::INPUT,
        format!("user \"{}\" was deactivated, reactivate the user first", clip(id)),
    )
}

/// A key looked up case-insensitively (Unity sends `Id`, `Type`).
pub fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key)
        .or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
