//! Owns `POST /users` (upsert) and `PATCH /users` (partial update with nested `privacy_settings`
//! merge and dotted keys), the user-id and size rules, and the `user.updated` event to the user's
//! own connections.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Outcome;
use crate::app::App;
use crate::auth::{ApiError, Caller, get_ci};
use crate::conn::Conn;
use crate::exchange::Req;
use crate::proto;
use crate::wire::{self, code};

/// Dotted keys in a partial update address at most this many levels.
const MAX_PATH_DEPTH: usize = 16;

fn allowed(caller: &Caller, id: &str) -> Result<(), ApiError> {
    if caller.server || caller.user == id {
        Ok(())
    } else {
        Err(ApiError::new(
            code::NOT_ALLOWED,
            format!("user \"{}\" may not update user \"{}\"", caller.user, super::clip(id)),
        ))
    }
}

/// `POST /users` `{"users": {"<id>": {…}}}` → `{"users": {"<id>": {…}}}`.
pub fn upsert(app: &App, req: &Req, caller: &Caller) -> Outcome {
    let body = req.json()?;
    let Some(users) = body.get("users").and_then(Value::as_object) else {
        return Err(ApiError::new(code::INPUT, "users is a required object field"));
    };
    for (id, u) in users {
        proto::validate_user_id("users key", id).map_err(|m| ApiError::new(code::INPUT, m))?;
        let Some(obj) = u.as_object() else {
            return Err(ApiError::new(
                code::INPUT,
                format!("users.{} must be an object", super::clip(id)),
            ));
        };
        if let Some(inner) = get_ci(obj, "id")
            && inner.as_str() != Some(id.as_str())
        {
            return Err(ApiError::new(code::INPUT, format!("users.{id}.id must equal its key")));
        }
        let size = u.to_string().len();
        if size > app.cfg.user_size_limit {
            return Err(ApiError::new(
                code::INPUT,
                proto::user_size_error(size, app.cfg.user_size_limit),
            ));
        }
        allowed(caller, id)?;
    }
    let mut out = Map::new();
    let mut w = app.world();
    if let Some(id) = users
        .keys()
        .find(|id| w.users.get(id.as_str()).is_some_and(|u| u.deactivated_at().is_some()))
    {
        return Err(super::deactivated(id));
    }
    for (id, u) in users {
        let rec = w.user_mut(id);
        if let Some(obj) = u.as_object() {
            rec.apply_upsert(obj);
        }
        out.insert(id.clone(), rec.to_json());
    }
    let updates = updated_events(&w, users.keys());
    drop(w);
    for (to, frame) in updates {
        app.deliver(&to, &frame.into());
    }
    Ok((201, json!({ "users": out }).into()))
}

/// `PATCH /users` `{"users": [{"id", "set": {…}, "unset": […]}]}`.
pub fn partial(app: &App, req: &Req, caller: &Caller) -> Outcome {
    let body = req.json()?;
    let Some(list) = body.get("users").and_then(Value::as_array) else {
        return Err(ApiError::new(code::INPUT, "users is a required array field"));
    };
    let mut out = Map::new();
    let mut w = app.world();
    let mut ids = Vec::new();
    for item in list {
        let Some(id) = item.get("id").and_then(Value::as_str) else {
            return Err(ApiError::new(code::INPUT, "every partial update needs an id"));
        };
        proto::validate_user_id("id", id).map_err(|m| ApiError::new(code::INPUT, m))?;
        allowed(caller, id)?;
        let empty = Map::new();
        let set = item.get("set").and_then(Value::as_object).unwrap_or(&empty);
        let unset: Vec<String> = item
            .get("unset")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let too_deep = set
            .keys()
            .map(String::as_str)
            .chain(unset.iter().map(String::as_str))
            .any(|k| k.split('.').count() > MAX_PATH_DEPTH);
        if too_deep {
            return Err(ApiError::new(
                code::INPUT,
                format!("a set/unset key nests deeper than {MAX_PATH_DEPTH} levels"),
            ));
        }
        let Some(rec) = w.users.get_mut(id) else {
            return Err(ApiError::new(
                code::DOES_NOT_EXIST,
                format!("user \"{id}\" does not exist"),
            ));
        };
        let backup = rec.fields.clone();
        rec.apply_partial(set, &unset);
        let size = rec.size();
        if size > app.cfg.user_size_limit {
            rec.fields = backup;
            rec.touch();
            return Err(ApiError::new(
                code::INPUT,
                proto::user_size_error(size, app.cfg.user_size_limit),
            ));
        }
        out.insert(id.to_owned(), rec.to_json());
        ids.push(id.to_owned());
    }
    let updates = updated_events(&w, ids.iter());
    drop(w);
    for (to, frame) in updates {
        app.deliver(&to, &frame.into());
    }
    Ok((200, json!({ "users": out }).into()))
}

/// `user.updated` with the own-user view, for each updated user's open connections.
fn updated_events<'a>(w: &crate::world::World, ids: impl Iterator<Item = &'a String>) -> Vec<(Vec<Arc<Conn>>, String)> {
    let mut out = Vec::new();
    for id in ids {
        let to: Vec<Arc<Conn>> = w.conns_of(id).cloned().collect();
        if to.is_empty() {
            continue;
        }
        let me = w.users.get(id.as_str()).map(|u| u.to_me()).unwrap_or(Value::Null);
        let ev = json!({"type": "user.updated", "user": me, "created_at": wire::now()});
        out.push((to, ev.to_string()));
    }
    out
}
