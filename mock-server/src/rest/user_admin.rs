//! Owns the user calls a chat backend makes besides upsert and partial update: query users
//! (`GET /users?payload=`), deactivate and reactivate (one user, or many as a task), delete (one
//! user, or many as a task), and `GET /tasks/{id}` for the tasks, which complete at once. Only
//! `user.deleted` reaches connected clients (presence subscribers, as `user.presence.changed`);
//! `user.deactivated` and `user.reactivated` are webhook events the service does not send on the
//! socket (mock-server/README.md, "Server-side REST").

use serde_json::{Map, Value, json};

use super::{Outcome, clip};
use crate::app::{self, App};
use crate::auth::{ApiError, Caller};
use crate::exchange::Req;
use crate::proto;
use crate::wire::{self, code};
use crate::world::{Msg, UserRec, World};

/// Users one query returns by default and at most; the largest offset.
const DEFAULT_LIMIT: usize = 30;
const MAX_LIMIT: usize = 100;
const MAX_OFFSET: usize = 1000;
/// Users one batch call may name.
const MAX_BATCH: usize = 100;

fn server_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.server {
        Ok(())
    } else {
        Err(ApiError::new(
            code::NOT_ALLOWED,
            format!("{what} is only allowed with server side auth"),
        ))
    }
}

fn no_user(id: &str) -> ApiError {
    ApiError::new(code::DOES_NOT_EXIST, format!("user \"{}\" does not exist", clip(id)))
}

/// `GET /users?payload={"filter_conditions", "sort", "limit", "offset", "include_deactivated_users"}`
/// → `{"users": […]}`. Deleted users are never listed; deactivated ones only when asked.
pub fn query(app: &App, req: &Req, _caller: &Caller) -> Outcome {
    let body: Value = match req.query.get("payload") {
        Some(p) => serde_json::from_str(p)
            .map_err(|e| ApiError::new(code::INPUT, format!("invalid payload parameter: {e}")))?,
        None => req.json()?,
    };
    let empty = json!({});
    let filter = body.get("filter_conditions").filter(|f| !f.is_null()).unwrap_or(&empty);
    if !filter.is_object() {
        return Err(ApiError::new(code::INPUT, "filter_conditions must be an object"));
    }
    check_filter(filter)?;
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_LIMIT, |l| l as usize);
    if limit > MAX_LIMIT {
        return Err(ApiError::new(code::INPUT, format!("limit must be {MAX_LIMIT} or less")));
    }
    let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    if offset > MAX_OFFSET {
        return Err(ApiError::new(
            code::INPUT,
            format!("offset must be {MAX_OFFSET} or less"),
        ));
    }
    let sort = sort_keys(body.get("sort"))?;
    let with_deactivated = super::flag(&body, "include_deactivated_users");
    let w = app.world();
    let mut found: Vec<(&UserRec, Value)> = candidates(&w, filter)
        .filter(|u| u.deleted_at().is_none() && (with_deactivated || u.deactivated_at().is_none()))
        .map(|u| (u, u.to_json()))
        .filter(|(_, v)| matches(v, filter))
        .collect();
    found.sort_by(|(_, a), (_, b)| {
        for (field, dir) in &sort {
            let o = cmp_json(a.get(field.as_str()), b.get(field.as_str()));
            let o = if *dir < 0 { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        a["id"].as_str().cmp(&b["id"].as_str())
    });
    let users: Vec<Value> = found.into_iter().skip(offset).take(limit).map(|(_, v)| v).collect();
    Ok((200, json!({ "users": users }).into()))
}

/// The users a filter can match: those it names by `id` (a string, `$eq` or `$in`) looked up
/// directly, else every user (the world lock is held meanwhile: a backend's lookups by id must
/// not stall a run of thousands of users).
fn candidates<'a>(w: &'a World, filter: &'a Value) -> Box<dyn Iterator<Item = &'a UserRec> + 'a> {
    let named: Option<Vec<&str>> = match filter.get("id") {
        Some(Value::String(s)) => Some(vec![s.as_str()]),
        Some(Value::Object(o)) if o.len() == 1 => match (o.get("$eq"), o.get("$in")) {
            (Some(Value::String(s)), _) => Some(vec![s.as_str()]),
            (_, Some(Value::Array(a))) => Some(a.iter().filter_map(Value::as_str).collect()),
            _ => None,
        },
        _ => None,
    };
    match named {
        Some(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            Box::new(ids.into_iter().filter_map(|id| w.users.get(id)))
        }
        None => Box::new(w.users.values()),
    }
}

/// `sort` as the server SDKs send it (`[{"field", "direction"}]`) or as an object; default
/// `created_at` ascending, then `id`.
fn sort_keys(sort: Option<&Value>) -> Result<Vec<(String, i64)>, ApiError> {
    let mut out = Vec::new();
    match sort {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for s in a {
                let field = s.get("field").and_then(Value::as_str);
                let dir = s.get("direction").and_then(Value::as_i64).unwrap_or(1);
                match field {
                    Some(f) if !f.is_empty() => out.push((f.to_owned(), dir)),
                    _ => return Err(ApiError::new(code::INPUT, "each sort item needs a field")),
                }
            }
        }
        Some(Value::Object(o)) => {
            for (k, v) in o {
                out.push((k.clone(), v.as_i64().unwrap_or(1)));
            }
        }
        Some(_) => return Err(ApiError::new(code::INPUT, "sort must be an array")),
    }
    if out.is_empty() {
        out.push(("created_at".to_owned(), 1));
    }
    Ok(out)
}

fn cmp_json(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        // Missing values sort last, as absent fields do in the backend's queries.
        (None | Some(Value::Null), _) => Ordering::Greater,
        (_, None | Some(Value::Null)) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

/// The operators the mock understands: `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`,
/// `$lte`, `$exists`, `$autocomplete`, and `$and`/`$or`/`$nor` at any level; anything else is
/// code 4 rather than a silent mismatch.
fn check_filter(f: &Value) -> Result<(), ApiError> {
    let Some(o) = f.as_object() else {
        return Err(ApiError::new(code::INPUT, "a filter must be an object"));
    };
    for (k, cond) in o {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let Some(list) = cond.as_array() else {
                    return Err(ApiError::new(code::INPUT, format!("{k} takes an array of filters")));
                };
                for c in list {
                    check_filter(c)?;
                }
            }
            _ => {
                if let Some(ops) = cond.as_object() {
                    for (op, v) in ops {
                        match op.as_str() {
                            "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" | "$exists" => {}
                            "$in" | "$nin" if v.is_array() => {}
                            "$autocomplete" => {
                                let ok = v.as_str().is_some_and(|s| s.chars().any(char::is_alphanumeric));
                                if !ok {
                                    return Err(ApiError::new(
                                        code::INPUT,
                                        "$autocomplete field is empty or contains invalid characters. Please provide a valid string to autocomplete",
                                    ));
                                }
                            }
                            _ => {
                                return Err(ApiError::new(
                                    code::INPUT,
                                    format!("operator {} is not supported for field {}", clip(op), clip(k)),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn matches(user: &Value, f: &Value) -> bool {
    let Some(o) = f.as_object() else { return false };
    o.iter().all(|(k, cond)| match k.as_str() {
        "$and" => cond.as_array().is_some_and(|a| a.iter().all(|c| matches(user, c))),
        "$or" => cond.as_array().is_some_and(|a| a.iter().any(|c| matches(user, c))),
        "$nor" => cond.as_array().is_some_and(|a| !a.iter().any(|c| matches(user, c))),
        field => field_matches(user.get(field), cond),
    })
}

fn field_matches(v: Option<&Value>, cond: &Value) -> bool {
    let Some(ops) = cond.as_object() else {
        return v == Some(cond);
    };
    ops.iter().all(|(op, x)| match op.as_str() {
        "$eq" => v == Some(x),
        "$ne" => v != Some(x),
        "$in" => x.as_array().is_some_and(|a| v.is_some_and(|v| a.contains(v))),
        "$nin" => x.as_array().is_some_and(|a| !v.is_some_and(|v| a.contains(v))),
        "$gt" => cmp_json(v, Some(x)).is_gt() && v.is_some(),
        "$gte" => cmp_json(v, Some(x)).is_ge() && v.is_some(),
        "$lt" => cmp_json(v, Some(x)).is_lt() && v.is_some(),
        "$lte" => cmp_json(v, Some(x)).is_le() && v.is_some(),
        "$exists" => x.as_bool().unwrap_or(true) == v.is_some_and(|v| !v.is_null()),
        "$autocomplete" => {
            let (Some(s), Some(q)) = (v.and_then(Value::as_str), x.as_str()) else {
                return false;
            };
            let q = q.to_lowercase();
            // Word-prefix matching: "ro" finds "Robert" and "Jane Rowe".
            s.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|word| word.starts_with(&q))
                || s.to_lowercase().starts_with(&q)
        }
        _ => false,
    })
}

/// Marks every kept message of `user` deleted (`type: "deleted"`, `deleted_at`), as
/// `mark_messages_deleted` asks.
fn mark_messages_deleted(w: &mut World, user: &str, now: &str) {
    for ch in w.channels.values_mut() {
        for m in ch.messages.iter_mut().filter(|m| m.author == user) {
            let Ok(mut v) = serde_json::from_str::<Value>(m.raw.get()) else {
                continue;
            };
            if let Some(o) = v.as_object_mut() {
                o.insert("type".into(), "deleted".into());
                o.insert("deleted_at".into(), now.into());
            }
            *m = Msg::new(m.nanos, v);
        }
    }
}

fn body_flag(body: &Value, key: &str) -> bool {
    super::flag(body, key)
}

/// Deactivates one known user; returns its JSON.
fn deactivate_one(w: &mut World, id: &str, mark_deleted: bool) -> Result<Value, ApiError> {
    let now = wire::now();
    let Some(u) = w.users.get_mut(id).filter(|u| u.deleted_at().is_none()) else {
        return Err(no_user(id));
    };
    if u.deactivated_at().is_none() {
        u.set_deactivated(Some(now.clone()));
        u.updated_at = now.clone();
        u.touch();
    }
    let out = u.to_json();
    if mark_deleted {
        mark_messages_deleted(w, id, &now);
    }
    Ok(out)
}

fn reactivate_one(w: &mut World, id: &str, name: Option<&Value>) -> Result<Value, ApiError> {
    let Some(u) = w.users.get_mut(id).filter(|u| u.deleted_at().is_none()) else {
        return Err(no_user(id));
    };
    if u.deactivated_at().is_none() {
        return Err(ApiError::new(
            code::INPUT,
            format!("user \"{}\" is not deactivated", clip(id)),
        ));
    }
    u.set_deactivated(None);
    if let Some(n) = name {
        u.fields.insert("name".into(), n.clone());
    }
    u.updated_at = wire::now();
    u.touch();
    Ok(u.to_json())
}

fn path_user(id: &str) -> Result<(), ApiError> {
    proto::validate_user_id("user id", id).map_err(|m| ApiError::new(code::INPUT, m))
}

/// `POST /users/{id}/deactivate` `{"mark_messages_deleted"?, "created_by_id"?}` → `{"user"}` with
/// `deactivated_at`.
pub fn deactivate(app: &App, req: &Req, caller: &Caller, id: &str) -> Outcome {
    server_only(caller, "DeactivateUser")?;
    path_user(id)?;
    let body = req.json()?;
    let user = deactivate_one(&mut app.world(), id, body_flag(&body, "mark_messages_deleted"))?;
    Ok((201, json!({ "user": user }).into()))
}

/// `POST /users/{id}/reactivate` `{"restore_messages"?, "name"?, "created_by_id"?}` → `{"user"}`
/// without `deactivated_at`; code 4 when the user is not deactivated.
pub fn reactivate(app: &App, req: &Req, caller: &Caller, id: &str) -> Outcome {
    server_only(caller, "ReactivateUser")?;
    path_user(id)?;
    let body = req.json()?;
    let user = reactivate_one(&mut app.world(), id, body.get("name"))?;
    Ok((201, json!({ "user": user }).into()))
}

/// The `user_ids` of a batch call: present, 1 to 100 valid ids.
fn batch_ids(body: &Value) -> Result<Vec<String>, ApiError> {
    let Some(list) = body.get("user_ids").and_then(Value::as_array) else {
        return Err(ApiError::new(code::INPUT, "user_ids is a required array field"));
    };
    if list.is_empty() || list.len() > MAX_BATCH {
        return Err(ApiError::new(
            code::INPUT,
            format!("user_ids must name 1 to {MAX_BATCH} users"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let Some(id) = v.as_str() else {
            return Err(ApiError::new(code::INPUT, "user_ids must be strings"));
        };
        path_user(id)?;
        out.push(id.to_owned());
    }
    Ok(out)
}

/// Records a completed task and returns `{"task_id"}`.
fn task(app: &App, result: Value) -> Outcome {
    let id = uuid_like(app);
    let now = wire::now();
    app.world().tasks.insert(
        id.clone(),
        json!({"task_id": id, "status": "completed", "created_at": now, "updated_at": now, "result": result}),
    );
    Ok((201, json!({ "task_id": id }).into()))
}

/// A 36-character, UUID-shaped id (the connection-id generator's, which is UUID-shaped).
fn uuid_like(app: &App) -> String {
    app.ids.next().to_string()
}

/// `POST /users/deactivate` `{"user_ids", "mark_messages_deleted"?, "created_by_id"?}` →
/// `{"task_id"}`; the task's result is `{"users": […]}`, each with `deactivated_at`.
pub fn deactivate_many(app: &App, req: &Req, caller: &Caller) -> Outcome {
    server_only(caller, "DeactivateUsers")?;
    let body = req.json()?;
    let ids = batch_ids(&body)?;
    let mark = body_flag(&body, "mark_messages_deleted");
    let users = {
        let mut w = app.world();
        if let Some(missing) = ids.iter().find(|id| !w.users.contains_key(id.as_str())) {
            return Err(no_user(missing));
        }
        ids.iter()
            .map(|id| deactivate_one(&mut w, id, mark))
            .collect::<Result<Vec<_>, _>>()?
    };
    task(app, json!({ "users": users }))
}

/// `POST /users/reactivate` `{"user_ids", "restore_messages"?, "created_by_id"?}` →
/// `{"task_id"}`; the task's result is `{"users": […]}`.
pub fn reactivate_many(app: &App, req: &Req, caller: &Caller) -> Outcome {
    server_only(caller, "ReactivateUsers")?;
    let body = req.json()?;
    let ids = batch_ids(&body)?;
    let users = {
        let mut w = app.world();
        ids.iter()
            .map(|id| reactivate_one(&mut w, id, None))
            .collect::<Result<Vec<_>, _>>()?
    };
    task(app, json!({ "users": users }))
}

/// Marks a user deleted and sends `user.deleted` to the presence subscribers of its channels.
fn delete_one(app: &App, id: &str, hard: bool, mark_deleted: bool) -> Result<Value, ApiError> {
    let now = wire::now();
    let mut guard = app.world();
    let w = &mut *guard;
    let Some(u) = w.users.get_mut(id).filter(|u| u.deleted_at().is_none()) else {
        return Err(no_user(id));
    };
    u.set_deleted(Some(now.clone()));
    u.updated_at = now.clone();
    u.touch();
    let user = u.to_json();
    if mark_deleted || hard {
        mark_messages_deleted(w, id, &now);
    }
    let to = app::presence_subscribers(w, id);
    if !to.is_empty() {
        #[derive(serde::Serialize)]
        struct UserDeleted<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            user: crate::world::UserRef<'a>,
            created_at: &'a str,
            hard_delete: bool,
            mark_messages_deleted: bool,
        }
        let ev = wire::to_string(&UserDeleted {
            kind: "user.deleted",
            user: w.user_ref(id),
            created_at: &now,
            hard_delete: hard,
            mark_messages_deleted: mark_deleted || hard,
        });
        app.deliver(&to, &ev.into());
    }
    Ok(user)
}

/// `DELETE /users/{id}?mark_messages_deleted=&hard_delete=&delete_conversation_channels=` →
/// `{"user"}` with `deleted_at`; the user leaves queries and `user.deleted` goes out.
pub fn delete(app: &App, req: &Req, caller: &Caller, id: &str) -> Outcome {
    server_only(caller, "DeleteUser")?;
    path_user(id)?;
    let q = |k: &str| req.query.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let user = delete_one(app, id, q("hard_delete"), q("mark_messages_deleted"))?;
    Ok((200, json!({ "user": user }).into()))
}

/// `POST /users/delete` `{"user_ids", "user": "soft"|"pruning"|"hard", "messages"?,
/// "conversations"?, "new_channel_owner_id"?}` → `{"task_id"}`; the task's result maps each id
/// to `{"status": "ok"}`.
pub fn delete_many(app: &App, req: &Req, caller: &Caller) -> Outcome {
    server_only(caller, "DeleteUsers")?;
    let body = req.json()?;
    let ids = batch_ids(&body)?;
    let mode = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    for k in ["user", "messages", "conversations"] {
        if !matches!(mode(k), "" | "soft" | "pruning" | "hard") {
            return Err(ApiError::new(code::INPUT, format!("{k} must be soft, pruning or hard")));
        }
    }
    if mode("user") == "hard" && (mode("messages") != "hard" || mode("conversations") != "hard") {
        return Err(ApiError::new(
            code::INPUT,
            "a hard user delete requires messages and conversations hard as well",
        ));
    }
    if let Some(missing) = ids.iter().find(|id| !app.world().users.contains_key(id.as_str())) {
        return Err(no_user(missing));
    }
    let mut result = Map::new();
    for id in &ids {
        let status = match delete_one(app, id, mode("user") == "hard", !mode("messages").is_empty()) {
            Ok(_) => json!({"status": "ok"}),
            Err(e) => json!({"status": "error", "error": e.detail}),
        };
        result.insert(id.clone(), status);
    }
    task(app, Value::Object(result))
}

/// `GET /tasks/{id}` → `{"task_id", "status": "completed", "result", …}` (code 16 when unknown).
pub fn get_task(app: &App, _req: &Req, caller: &Caller, id: &str) -> Outcome {
    server_only(caller, "GetTask")?;
    let w = app.world();
    match w.tasks.get(id) {
        Some(t) => Ok((200, t.clone().into())),
        None => Err(ApiError::new(
            code::DOES_NOT_EXIST,
            format!("task {} does not exist", clip(id)),
        )),
    }
}
