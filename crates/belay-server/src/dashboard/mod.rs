//! The web dashboard, served at `/` on the TCP listener (`belay serve
//! --listen`): one page of plain HTML, JavaScript and CSS built into the
//! binary (no build step, nothing fetched from elsewhere), which shows
//! hosts, jobs, a job's events and live log, app links and a 24-hour
//! timeline, live from `GET /v1/events` ([`crate::api::events`]).
//!
//! Logging in: `GET /?token=T` checks the token, sets it as an HttpOnly,
//! SameSite=Strict cookie ([`crate::api::access::COOKIE`]) and answers 303
//! to `/`, so the token leaves the address bar (and the history) at once;
//! the page's API requests then carry the cookie, and the header that
//! every change needs ([`crate::api::access::DASHBOARD_HEADER`]). Every
//! answer here has a Content-Security-Policy that allows this origin
//! only.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::api::access::{COOKIE, Presented, authenticate, presented_token};
use crate::state::Shared;

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Scripts, styles, images and requests from this origin only; no frames,
/// no plugins, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .with_state(state)
}

/// Whether the listener serves TLS (`--tls-cert`): the cookie is then
/// `Secure`.
pub fn served_over_tls(state: &Shared) -> bool {
    served_over_tls_for(state)
}

/// [`served_over_tls`] on the state itself.
pub fn served_over_tls_for(state: &crate::state::DaemonState) -> bool {
    state.listen.get().is_some_and(|l| l.tls)
}

/// The headers every dashboard answer carries.
fn guarded(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

const LOGIN_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>belay: log in</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
<body><main id=\"main\"><h1>belay</h1><p id=\"login-needed\">This dashboard needs a token. \
Open the address that <code>belay serve --listen</code> or <code>belay token create NAME</code> \
printed (it ends in <code>/?token=…</code>).</p></main></body></html>";

fn login_needed() -> Response {
    guarded(
        StatusCode::UNAUTHORIZED,
        "text/html; charset=utf-8",
        LOGIN_PAGE,
    )
}

#[derive(Deserialize)]
pub struct Login {
    token: Option<String>,
}

async fn index(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(login): Query<Login>,
) -> Response {
    if let Some(token) = login.token {
        return match authenticate(&state, token.trim()).await {
            Ok(Some(_)) => {
                let secure = if served_over_tls(&state) {
                    "; Secure"
                } else {
                    ""
                };
                let cookie = format!(
                    "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
                    token.trim()
                );
                (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, "/".to_string()),
                        (header::SET_COOKIE, cookie),
                        (header::CACHE_CONTROL, "no-store".to_string()),
                        (header::REFERRER_POLICY, "no-referrer".to_string()),
                    ],
                )
                    .into_response()
            }
            Ok(None) => login_needed(),
            Err(e) => e.into_response(),
        };
    }
    match presented_token(&headers) {
        Some((token, Presented::Cookie | Presented::Bearer)) => {
            match authenticate(&state, &token).await {
                Ok(Some(_)) => guarded(StatusCode::OK, "text/html; charset=utf-8", INDEX),
                Ok(None) => login_needed(),
                Err(e) => e.into_response(),
            }
        }
        None => login_needed(),
    }
}

/// The page's script and style: nothing secret, served to anyone.
async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => guarded(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        "style.css" => guarded(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS),
        _ => guarded(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such asset\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX.contains("src=\"/assets/app.js\""));
        assert!(INDEX.contains("href=\"/assets/style.css\""));
        for text in [INDEX, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        // The script reaches this origin only (an app's link is built from
        // its forward's local address, not fetched).
        assert!(!APP_JS.contains("https://") && !APP_JS.contains("fetch('http"));
        assert!(!INDEX.contains("<script>"), "no inline script (CSP)");
        assert!(!INDEX.contains("style="), "no inline style (CSP)");
    }
}
