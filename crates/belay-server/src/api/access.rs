//! Who may do what on the API served on TCP (`belay serve --listen`).
//!
//! The Unix socket serves only this user (its peer uid is checked), who
//! may do everything: requests there carry no [`Caller`], which reads as
//! [`Caller::Local`]. On TCP, [`gate`] runs before every route: a request
//! without a valid `Authorization: Bearer TOKEN` is answered 401; otherwise
//! the token's [`Caller`] goes with the request. An admin token may do what
//! the local user may. A user token reaches only its own jobs:
//!
//! - a job named in the path (`/v1/jobs/{job}/…`), the body
//!   (cancellations, releases, a forward's or shell's target) or the query
//!   (`DELETE /v1/forwards?job=`) must be its own, or the answer is 403
//!   (an unknown one: 404). A name or id prefix is looked up among the
//!   user's own jobs only ([`Store::resolve_owned`]: two users may both
//!   have a `train`), and the request goes on naming the job's id, so the
//!   route acts on the job that was checked ([`owned_request`]);
//! - a shell or forward to a host rather than to a job, stopping every
//!   forward, host keys, relayed questions and stopping the daemon are the
//!   daemon user's: 403;
//! - lists (`GET /v1/jobs`, `GET /v1/forwards`) hold only its own (the
//!   routes filter with [`Caller`]), and jobs it submits are its own.
//!
//! The dashboard's cookie ([`COOKIE`]) is taken as the bearer header
//! is; a request it authenticates that changes something must carry
//! [`DASHBOARD_HEADER`] (cross-site request forgery).
//!
//! Checking here, before the routes, keeps one place that says what a
//! user may reach; the routes only filter their lists and stamp owners.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use belay_core::CoreError;
use belay_core::store::Store;

use super::ApiError;
use crate::state::Shared;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The Unix socket: this user, who may do everything.
    Local,
    /// A token on TCP, by its name.
    Token { name: String, admin: bool },
}

impl Caller {
    /// The caller of a request (no extension: the Unix socket).
    pub fn of(extension: Option<axum::Extension<Caller>>) -> Caller {
        extension.map_or(Caller::Local, |axum::Extension(c)| c)
    }

    /// Sees and acts on every job.
    pub fn sees_all(&self) -> bool {
        match self {
            Caller::Local => true,
            Caller::Token { admin, .. } => *admin,
        }
    }

    /// The owner its submissions get (`None`: the local user).
    pub fn owner(&self) -> Option<String> {
        match self {
            Caller::Local => None,
            Caller::Token { name, .. } => Some(name.clone()),
        }
    }

    /// Only these jobs (`None`: every one) in its lists.
    pub fn owner_filter(&self) -> Option<String> {
        if self.sees_all() { None } else { self.owner() }
    }

    /// May it see a job owned by `owner`?
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.sees_all() || (owner.is_some() && owner == self.owner().as_deref())
    }
}

/// The largest body read here to find the jobs a request names.
const BODY_LIMIT: usize = 1 << 20;

fn unauthorized(message: &str) -> Response {
    let body =
        serde_json::json!({"error": {"kind": "unauthorized", "message": message, "exit": 1}});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

/// The dashboard's login cookie ([`crate::dashboard`]): the same token
/// as the bearer header, HttpOnly and SameSite=Strict.
pub const COOKIE: &str = "belay_token";
/// The header the dashboard's own requests carry: a request that is
/// authenticated by the cookie and changes something must have it (a page
/// of another site cannot set it), or it is refused (403).
pub const DASHBOARD_HEADER: &str = "x-belay-dashboard";

/// The owner of jobs submitted with `serve --listen`'s own admin token:
/// `@` is never in a stored token's name, so no user token can own them.
pub const SESSION_NAME: &str = "dashboard@serve";

/// How a request presented its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Bearer,
    Cookie,
}

/// The token a request presents: the bearer header first, else the
/// dashboard's cookie.
pub fn presented_token(headers: &axum::http::HeaderMap) -> Option<(String, Presented)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = bearer {
        return Some((t, Presented::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty())
        .map(|t| (t, Presented::Cookie))
}

/// Whose token `presented` is: this run's own admin token (`serve
/// --listen`'s dashboard URL), or one in the store. `Ok(None)`: unknown or
/// revoked.
pub async fn authenticate(state: &Shared, presented: &str) -> Result<Option<Caller>, ApiError> {
    if let Some(own) = state.session_token.get()
        && belay_core::tokens::constant_time_eq(
            own.as_bytes(),
            belay_core::tokens::hash(presented).as_bytes(),
        )
    {
        return Ok(Some(Caller::Token {
            name: SESSION_NAME.into(),
            admin: true,
        }));
    }
    let home = state.home.clone();
    let presented = presented.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&home.store_path())?;
        belay_core::tokens::verify(&mut store, &presented)
    })
    .await
    .map_err(|e| ApiError::internal(format!("token check failed: {e}")))?
    .map_err(ApiError::from)?;
    Ok(found.map(|t| Caller::Token {
        name: t.name,
        admin: t.admin,
    }))
}

/// Authenticate, then check what a user token names (see the module doc).
pub async fn gate(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let Some((presented, how)) = presented_token(request.headers()) else {
        return unauthorized(
            "this API needs a token: Authorization: Bearer TOKEN (belay token create NAME)",
        );
    };
    let caller = match authenticate(&state, &presented).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthorized("unknown or revoked token"),
        Err(e) => return e.into_response(),
    };
    if how == Presented::Cookie
        && !matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .headers()
            .get(DASHBOARD_HEADER)
            .is_none_or(|v| v != "1")
    {
        return ApiError::forbidden(format!(
            "a request with the dashboard's cookie that changes something needs the header {DASHBOARD_HEADER}: 1"
        ))
        .into_response();
    }
    if !caller.sees_all() {
        // Questions a connection asks are the daemon user's to answer.
        request
            .headers_mut()
            .remove(crate::prompts::TERMINAL_HEADER);
        match authorize(&state, &caller, request).await {
            Ok(checked) => request = checked,
            Err(e) => return e.into_response(),
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A user token's request, let through or refused (403).
async fn authorize(state: &Shared, caller: &Caller, request: Request) -> Result<Request, ApiError> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let admin_only = |what: &str| Err(ApiError::forbidden(format!("{what} needs an admin token")));
    match (&method, segments.as_slice()) {
        (_, ["v1", "jobs", reference, ..]) => {
            let id = check_job(state, caller, &decode_segment(reference), Missing::PassOn).await?;
            Ok(owned_request::in_path(request, 2, id))
        }
        (&Method::DELETE, ["v1", "daemon"]) => admin_only("stopping the daemon"),
        (_, ["v1", "hosts", _, "key"]) => admin_only("a host's key"),
        (_, ["v1", "prompts", ..]) => admin_only("answering a connection's question"),
        (&Method::DELETE, ["v1", "shells", target]) => {
            let id = check_job(state, caller, &decode_segment(target), Missing::Host).await?;
            Ok(owned_request::in_path(request, 2, id))
        }
        (&Method::DELETE, ["v1", "forwards", id]) => {
            let id = id.to_string();
            let job = with_store(state, move |store| {
                Ok(store
                    .forwards()?
                    .into_iter()
                    .find(|f| f.id == id)
                    .map(|f| f.job_id))
            })
            .await?;
            match job {
                // Unknown: the route says so.
                None => Ok(request),
                Some(None) => Err(ApiError::forbidden(
                    "a forward to a host is the daemon user's",
                )),
                Some(Some(job)) => {
                    check_job(state, caller, &job, Missing::PassOn).await?;
                    Ok(request)
                }
            }
        }
        (&Method::DELETE, ["v1", "forwards"]) => {
            let job = request.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("job="))
                    .map(percent_decode)
            });
            match job {
                Some(job) => {
                    let id = check_job(state, caller, &job, Missing::PassOn).await?;
                    Ok(owned_request::in_query(request, "job", id))
                }
                None if request.uri().query().is_some_and(|q| q.contains("all=")) => {
                    admin_only("stopping every forward")
                }
                None => Ok(request),
            }
        }
        (&Method::POST, ["v1", "cancellations" | "releases" | "forwards" | "shells"]) => {
            let (mut parts, body) = request.into_parts();
            let mut bytes = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .map_err(|e| ApiError::bad_input(format!("bad request body: {e}")))?;
            // A body that is not JSON is the route's to refuse (400).
            if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let (key, missing) = match segments[1] {
                    "cancellations" => ("jobs", Missing::PassOn),
                    "releases" => ("job", Missing::PassOn),
                    "forwards" => ("to", Missing::Host),
                    _ => ("target", Missing::Host),
                };
                let mut changed = false;
                for named in owned_request::strings_at(&mut value, key) {
                    if let Some(id) = check_job(state, caller, named, missing).await? {
                        *named = id;
                        changed = true;
                    }
                }
                if changed {
                    bytes = serde_json::to_vec(&value)
                        .map_err(|e| ApiError::internal(format!("request body: {e}")))?
                        .into();
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, bytes.len().into());
                }
            }
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Ok(request),
    }
}

/// What a reference that names no job means where it was found.
#[derive(Clone, Copy)]
enum Missing {
    /// Only a job fits here: the route answers 404.
    PassOn,
    /// It names a host (a shell's or a forward's target): the daemon
    /// user's account, not a user's.
    Host,
}

/// 403 unless `reference` is the caller's job (see [`Missing`]); the id
/// of the job it names among the caller's own (a name, a prefix), which
/// the request then names instead.
async fn check_job(
    state: &Shared,
    caller: &Caller,
    reference: &str,
    missing: Missing,
) -> Result<Option<String>, ApiError> {
    let wanted = reference.to_string();
    let owner = caller.owner().unwrap_or_default();
    let found = with_store(state, move |store| {
        match store.resolve_owned(&wanted, &owner) {
            Ok(job) => Ok(Ok(job)),
            Err(e) => Ok(Err(e)),
        }
    })
    .await?;
    match found {
        Ok(job) if !caller.may_see(job.owner.as_deref()) => Err(ApiError::forbidden(format!(
            "job {} is another user's",
            job.id
        ))),
        Ok(job) => Ok(Some(job.id)),
        Err(CoreError::UnknownJob(_)) if matches!(missing, Missing::Host) => {
            Err(ApiError::forbidden(format!(
                "'{reference}' is not one of your jobs: a user token reaches its own jobs, not hosts"
            )))
        }
        // Not among the caller's jobs, ambiguous among them: said here,
        // as the route would, which would look among every user's.
        Err(e) => Err(ApiError::from(e)),
    }
}

async fn with_store<T, F>(state: &Shared, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> belay_core::error::Result<T> + Send + 'static,
{
    let home = state.home.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&home.store_path())?;
        work(&store)
    })
    .await
    .map_err(|e| ApiError::internal(format!("request worker failed: {e}")))?
    .map_err(ApiError::from)
}

/// `%XX` escapes of a path segment (`+` is itself there).
fn decode_segment(segment: &str) -> String {
    percent_decode(&segment.replace('+', "%2B"))
}

/// `%XX` escapes and `+` of a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A user's request rewritten to name the job [`check_job`] found by id,
/// so that the route (which resolves among every user's jobs) acts on
/// that one. The gate runs before routing ([`super::router_tcp`]).
mod owned_request {
    use axum::extract::Request;
    use axum::http::Uri;

    /// Segment `index` (0: `v1`) of the path becomes `id`.
    pub fn in_path(mut request: Request, index: usize, id: Option<String>) -> Request {
        let Some(id) = id else { return request };
        let uri = request.uri();
        let mut segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        if index >= segments.len() {
            return request;
        }
        segments[index] = &id;
        let mut path = format!("/{}", segments.join("/"));
        if let Some(query) = uri.query() {
            path = format!("{path}?{query}");
        }
        set(&mut request, &path);
        request
    }

    /// The query's `key=` becomes `key=id`.
    pub fn in_query(mut request: Request, key: &str, id: Option<String>) -> Request {
        let Some(id) = id else { return request };
        let uri = request.uri();
        let Some(query) = uri.query() else {
            return request;
        };
        let prefix = format!("{key}=");
        let query: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.starts_with(&prefix) {
                    format!("{prefix}{id}")
                } else {
                    kv.to_string()
                }
            })
            .collect();
        let path = format!("{}?{}", uri.path(), query.join("&"));
        set(&mut request, &path);
        request
    }

    fn set(request: &mut Request, path_and_query: &str) {
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }

    /// The strings of a body's `key` (one, or an array of them).
    pub fn strings_at<'a>(value: &'a mut serde_json::Value, key: &str) -> Vec<&'a mut String> {
        match value.get_mut(key) {
            Some(serde_json::Value::String(s)) => vec![s],
            Some(serde_json::Value::Array(items)) => items
                .iter_mut()
                .filter_map(|i| match i {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn uri(request: Request) -> String {
            request.uri().to_string()
        }

        fn get(path: &str) -> Request {
            Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap()
        }

        #[test]
        fn the_checked_id_replaces_the_name_and_nothing_else() {
            let id = || Some("1a2b3c4d".to_string());
            assert_eq!(
                uri(in_path(
                    get("/v1/jobs/my%2Ejob/logs/stdout?from=3"),
                    2,
                    id()
                )),
                "/v1/jobs/1a2b3c4d/logs/stdout?from=3"
            );
            assert_eq!(
                uri(in_path(get("/v1/jobs/train"), 2, None)),
                "/v1/jobs/train"
            );
            assert_eq!(
                uri(in_query(get("/v1/forwards?x=1&job=train"), "job", id())),
                "/v1/forwards?x=1&job=1a2b3c4d"
            );
            let mut body = serde_json::json!({"jobs": ["a", 1, "b"], "grace": 1});
            let found: Vec<String> = strings_at(&mut body, "jobs")
                .into_iter()
                .map(|s| s.clone())
                .collect();
            assert_eq!(found, ["a", "b"]);
        }
    }
}

#[cfg(test)]
#[test]
fn a_path_segment_is_percent_decoded_and_keeps_its_plus() {
    assert_eq!(decode_segment("%74rain"), "train");
    assert_eq!(decode_segment("a+b"), "a+b");
    assert_eq!(percent_decode("a+b"), "a b");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn the_bearer_header_comes_first_then_the_dashboard_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; belay_token=belay_c00k; belay_token_x=no"),
        );
        assert_eq!(
            presented_token(&headers),
            Some(("belay_c00k".to_string(), Presented::Cookie))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer belay_be4r"),
        );
        assert_eq!(
            presented_token(&headers),
            Some(("belay_be4r".to_string(), Presented::Bearer))
        );
        let mut other = HeaderMap::new();
        other.insert(
            header::COOKIE,
            HeaderValue::from_static("belay_token_x=no; belay_token="),
        );
        assert_eq!(presented_token(&other), None, "no empty or look-alike");
    }
}
