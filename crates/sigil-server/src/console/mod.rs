//! The reviewer console: server-rendered HTML pages over the report store,
//! on their own listener (`console_listen`). Served with hyper directly,
//! as the metrics listener is: a handful of routes do not need a
//! framework, and hyper is already in the build.
//!
//! - Sign-in takes an API key of role reviewer from the server's key ring
//!   (a matcher key is refused) and opens a server-side [`session`]: an
//!   HttpOnly, SameSite=Strict cookie (Secure when `[tls]` is set) that
//!   expires after `console.session_ttl_s`; sign-out ends it.
//! - Every form carries the session's CSRF token (the sign-in form a
//!   token of its own cookie), compared in constant time.
//! - Every change goes through `ReportStore::update`, so the review rules
//!   of `sigil_reports::review` apply and the audit trail names the key.
//! - The console never fetches or shows content: a content reference is a
//!   link through `console.content_url`, or text.

mod html;
mod session;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::auth::Role;
use crate::server::AppState;
use html::{esc, QueueQuery};
use session::{Lookup, Session, Sessions};
use sigil_reports::time::{now_ms, parse_utc_ms};
use sigil_reports::{ListOrder, ReportFilter, ReportStatus, ReportUpdate, StoreError};

/// The session cookie's name.
const SESSION_COOKIE: &str = "sigil_session";
/// The sign-in form's CSRF cookie.
const SIGNIN_COOKIE: &str = "sigil_signin";
/// Largest form body accepted: room for a note at the store's limit
/// (10,000 bytes, up to three times that URL-encoded) and the other fields.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Stubs per queue page.
const PAGE_SIZE: usize = 50;

type Reply = Response<Full<Bytes>>;

/// The console's state: the server's, and the sessions.
pub struct Console {
    state: Arc<AppState>,
    sessions: Sessions,
    secure_cookie: bool,
}

impl Console {
    pub fn new(state: Arc<AppState>) -> Arc<Self> {
        let c = &state.config.console;
        let sessions = Sessions::new(Duration::from_secs(c.session_ttl_s), c.max_sessions);
        let secure_cookie = state.config.tls.is_some();
        Arc::new(Console {
            state,
            sessions,
            secure_cookie,
        })
    }

    /// Serves the console on `listener` until `shutdown` resolves.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "console listener accept failed");
                        continue;
                    }
                },
            };
            let console = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let console = console.clone();
                    async move { Ok::<_, Infallible>(console.handle(req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let mut reply = self.route(req).await;
        let h = reply.headers_mut();
        for (name, value) in [
            (
                "content-security-policy",
                "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        reply
    }

    async fn route(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let cookies = cookies(&req);
        if path == "/style.css" {
            return text(
                StatusCode::OK,
                "text/css; charset=utf-8",
                html::STYLE.into(),
            );
        }
        if path == "/favicon.ico" {
            return not_found("no icon");
        }
        if path == "/signin" {
            return match method {
                Method::GET => self.signin_page(cookie(&cookies, SIGNIN_COOKIE), None),
                Method::POST => self.signin(req, &cookies).await,
                _ => not_allowed(),
            };
        }
        // Everything else needs a session.
        let Some(token) = cookie(&cookies, SESSION_COOKIE) else {
            return redirect("/signin");
        };
        let session = match self.sessions.get(token) {
            Lookup::Valid(s) => s,
            Lookup::Expired => {
                return self.signin_page(None, Some("your session expired: sign in again"))
            }
            Lookup::Unknown => {
                return self.signin_page(None, Some("your session has ended: sign in again"))
            }
        };
        let token = token.to_string();
        match (&method, path.as_str()) {
            (&Method::GET, "/") => redirect("/queue"),
            (&Method::GET, "/queue") => self.queue(&session, req.uri().query()).await,
            (&Method::POST, "/signout") => {
                let form = match read_form(req).await {
                    Ok(f) => f,
                    Err(r) => return *r,
                };
                if !csrf_ok(&session, &form) {
                    return forbidden_csrf();
                }
                self.sessions.close(&token);
                tracing::info!(key = %session.key_name, "console sign-out");
                let mut r = self.signin_page(None, Some("signed out"));
                r.headers_mut()
                    .append(SET_COOKIE, self.cookie_header(SESSION_COOKIE, "", 0));
                r
            }
            _ => {
                let Some(rest) = path.strip_prefix("/report/") else {
                    return not_found("no such page");
                };
                let (id, export) = match rest.rsplit_once('/') {
                    Some((id, "cybertipline.xml")) => (id, Some(Export::Xml)),
                    Some((id, "cybertipline.json")) => (id, Some(Export::Json)),
                    Some(_) => return not_found("no such page"),
                    None => (rest, None),
                };
                let id = match percent_encoding::percent_decode_str(id).decode_utf8() {
                    Ok(id) => id.into_owned(),
                    Err(_) => return not_found("the stub id is not UTF-8"),
                };
                match (method, export) {
                    (Method::GET, None) => self.report(&session, &id, None).await,
                    (Method::GET, Some(kind)) => self.export(&session, &id, kind).await,
                    (Method::POST, None) => self.act(&session, &id, req).await,
                    _ => not_allowed(),
                }
            }
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure with TLS.
    fn cookie_header(&self, name: &str, value: &str, max_age_s: u64) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let v = format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
    }

    /// The sign-in page, with its CSRF token in a cookie: the one the
    /// browser already holds (`current`, so a second tab or a stray request
    /// does not invalidate an open form), or a fresh one.
    fn signin_page(&self, current: Option<&str>, error: Option<&str>) -> Reply {
        let token = match current.filter(|t| is_token(t)) {
            Some(t) => t.to_string(),
            None => match session::random_token() {
                Ok(t) => t,
                Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            },
        };
        let status = if error.is_some_and(|e| e != "signed out") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        let mut r = text(status, HTML, html::signin(&token, error));
        r.headers_mut()
            .append(SET_COOKIE, self.cookie_header(SIGNIN_COOKIE, &token, 3600));
        r
    }

    async fn signin(&self, req: Request<Incoming>, cookies: &[(String, String)]) -> Reply {
        let expected = cookie(cookies, SIGNIN_COOKIE).unwrap_or("").to_string();
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(r) => return *r,
        };
        let sent = field(&form, "csrf");
        if expected.is_empty() || !session::tokens_equal(&expected, sent) {
            return forbidden_csrf();
        }
        let key = field(&form, "key").trim();
        let caller = match self.state.keys.authorize_token(key, Role::Reviewer) {
            Ok(c) => c,
            Err(status) => {
                tracing::warn!(reason = %status.message(), "console sign-in refused");
                let mut r = self.signin_page(
                    Some(&expected),
                    Some(&format!(
                        "sign-in refused: {} (the console needs an API key of role reviewer)",
                        status.message()
                    )),
                );
                *r.status_mut() = if status.code() == tonic::Code::PermissionDenied {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                };
                return r;
            }
        };
        let (token, _) = match self.sessions.open(caller.name()) {
            Ok(s) => s,
            Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
        tracing::info!(key = %caller.name(), "console sign-in");
        let mut r = redirect("/queue");
        let ttl = self.sessions.ttl().as_secs();
        r.headers_mut()
            .append(SET_COOKIE, self.cookie_header(SESSION_COOKIE, &token, ttl));
        r.headers_mut()
            .append(SET_COOKIE, self.cookie_header(SIGNIN_COOKIE, "", 0));
        r
    }

    async fn queue(&self, session: &Session, query: Option<&str>) -> Reply {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| field(&pairs, k).trim().to_string();
        let q = QueueQuery {
            // The queue opens on pending stubs; "any status" is an empty value.
            status: if query.is_none() {
                "pending".into()
            } else {
                get("status")
            },
            list: get("list"),
            category: get("category"),
            from: get("from"),
            to: get("to"),
            submitter: get("submitter"),
            page: get("page"),
        };
        let signed_in = Some((session.key_name.as_str(), session.csrf.as_str()));
        let bad = |msg: String| {
            let body = html::message("error", &msg);
            text(
                StatusCode::BAD_REQUEST,
                HTML,
                html::page("Queue", signed_in, &body),
            )
        };
        let status = if q.status.is_empty() {
            None
        } else {
            match ReportStatus::parse(&q.status) {
                Some(s) => Some(s),
                None => return bad(format!("unknown status {:?}", q.status)),
            }
        };
        let date = |name: &str, v: &str| -> Result<Option<i64>, String> {
            if v.is_empty() {
                Ok(None)
            } else {
                parse_utc_ms(v)
                    .map(Some)
                    .map_err(|e| format!("{name}: {e}"))
            }
        };
        let (from, to) = match (date("from", &q.from), date("to", &q.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return bad(e),
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let filter = ReportFilter {
            status,
            detected_after_ms: from,
            detected_before_ms: to,
            list: non_empty(&q.list),
            category: non_empty(&q.category),
            submitter_ref: non_empty(&q.submitter),
            order: ListOrder::Deadline,
            page_size: PAGE_SIZE,
            page_token: non_empty(&q.page),
            ..ReportFilter::default()
        };
        let result = self
            .state
            .store
            .run(move |store| {
                let counts = store.counts(&filter)?;
                let page = store.list(&filter)?;
                Ok((counts, page))
            })
            .await;
        let (counts, page) = match flatten(result) {
            Ok(v) => v,
            Err(e) => return self.store_error(session, e),
        };
        let body = html::queue(
            &q,
            &counts,
            &page.reports,
            page.next_page_token.as_deref(),
            now_ms(),
        );
        text(StatusCode::OK, HTML, html::page("Queue", signed_in, &body))
    }

    async fn report(
        &self,
        session: &Session,
        id: &str,
        flash: Option<(StatusCode, &'static str, String)>,
    ) -> Reply {
        let owned = id.to_string();
        let got = flatten(self.state.store.run(move |s| s.get(&owned)).await);
        let r = match got {
            Ok(r) => r,
            Err(e) => return self.store_error(session, e),
        };
        let status = flash.as_ref().map_or(StatusCode::OK, |f| f.0);
        let body = html::report(
            &r,
            &session.csrf,
            self.state.config.console.content_url.as_deref(),
            flash
                .as_ref()
                .map(|(_, class, text)| (*class, text.as_str())),
            now_ms(),
        );
        let signed_in = Some((session.key_name.as_str(), session.csrf.as_str()));
        text(
            status,
            HTML,
            html::page(&format!("Stub {id}"), signed_in, &body),
        )
    }

    async fn export(&self, session: &Session, id: &str, kind: Export) -> Reply {
        let owned = id.to_string();
        let r = match flatten(self.state.store.run(move |s| s.get(&owned)).await) {
            Ok(r) => r,
            Err(e) => return self.store_error(session, e),
        };
        tracing::info!(key = %session.key_name, id, format = kind.name(), "console export");
        let (body, ctype, ext) = match kind {
            Export::Xml => match sigil_reports::export::cybertipline_xml(&r) {
                Ok(x) => (x, "application/xml; charset=utf-8", "xml"),
                Err(e) => {
                    return error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("cannot export stub {id} as XML: {e}"),
                    )
                }
            },
            Export::Json => (
                serde_json::to_string_pretty(&sigil_reports::export::cybertipline_json(&r))
                    .unwrap_or_default(),
                "application/json",
                "json",
            ),
        };
        let mut reply = text(StatusCode::OK, ctype, body);
        let name: String =
            r.id.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"cybertipline-{name}.{ext}\""
        )) {
            reply.headers_mut().insert("content-disposition", v);
        }
        reply
    }

    /// A POST on a report page: one action, through the review rules.
    async fn act(&self, session: &Session, id: &str, req: Request<Incoming>) -> Reply {
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(r) => return *r,
        };
        if !csrf_ok(session, &form) {
            return forbidden_csrf();
        }
        let update = match update_from_form(&form) {
            Ok(u) => u,
            Err(msg) => {
                return self
                    .report(session, id, Some((StatusCode::BAD_REQUEST, "error", msg)))
                    .await
            }
        };
        let (owned, actor) = (id.to_string(), session.key_name.clone());
        let result = flatten(
            self.state
                .store
                .run(move |s| s.update(&owned, &update, &actor, now_ms()))
                .await,
        );
        match result {
            Ok(r) => {
                tracing::info!(key = %session.key_name, id, version = r.version, "console update");
                let text = format!(
                    "saved: the stub is now {} (version {})",
                    r.status.as_str(),
                    r.version
                );
                self.report(session, id, Some((StatusCode::OK, "ok", text)))
                    .await
            }
            Err(e @ StoreError::Rejected { .. }) => {
                let msg = format!("not saved: {e}");
                self.report(
                    session,
                    id,
                    Some((StatusCode::UNPROCESSABLE_ENTITY, "error", msg)),
                )
                .await
            }
            Err(e @ StoreError::Conflict { .. }) => {
                let msg = format!("not saved: {e}");
                self.report(session, id, Some((StatusCode::CONFLICT, "error", msg)))
                    .await
            }
            Err(e) => self.store_error(session, e),
        }
    }

    /// A store failure as a page: not found, or the store unreachable.
    fn store_error(&self, session: &Session, e: StoreError) -> Reply {
        let signed_in = Some((session.key_name.as_str(), session.csrf.as_str()));
        let (status, msg) = match &e {
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
            StoreError::BadPageToken(_) => (StatusCode::BAD_REQUEST, e.to_string()),
            _ => {
                tracing::error!(error = %e, "console: report store call failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the report store cannot be reached now ({e}); matching keeps working \
                         and stubs are not lost: try again shortly"
                    ),
                )
            }
        };
        let body = html::message("error", &msg);
        text(status, HTML, html::page("Error", signed_in, &body))
    }
}

#[derive(Debug, Clone, Copy)]
enum Export {
    Xml,
    Json,
}

impl Export {
    fn name(self) -> &'static str {
        match self {
            Export::Xml => "xml",
            Export::Json => "json",
        }
    }
}

const HTML: &str = "text/html; charset=utf-8";

/// The update a report page form asks for; the rules themselves are the
/// store's (`sigil_reports::review`), applied when it is written.
fn update_from_form(form: &[(String, String)]) -> Result<ReportUpdate, String> {
    let version = field(form, "version");
    let expected_version = Some(
        version
            .parse::<i64>()
            .map_err(|_| format!("the form's version {version:?} is not a number"))?,
    );
    let note = |name: &str| {
        let n = field(form, name).trim();
        if n.is_empty() {
            Vec::new()
        } else {
            vec![n.to_string()]
        }
    };
    let viewed = match field(form, "viewed") {
        "" => None,
        "true" => Some(true),
        "false" => Some(false),
        other => return Err(format!("viewed {other:?} must be true or false")),
    };
    let mut u = ReportUpdate {
        expected_version,
        ..ReportUpdate::default()
    };
    match field(form, "action") {
        "confirm" => {
            u.status = Some(ReportStatus::Confirmed);
            u.viewed = viewed;
            u.classification = Some(field(form, "classification").to_string());
        }
        "dismiss" => {
            u.status = Some(ReportStatus::Dismissed);
            u.add_annotations = note("reason");
        }
        "viewed" => {
            u.viewed = Some(viewed.ok_or("choose viewed or not viewed")?);
        }
        "status" => {
            let s = field(form, "status");
            u.status = Some(ReportStatus::parse(s).ok_or_else(|| format!("unknown status {s:?}"))?);
            u.add_annotations = note("note");
        }
        "note" => {
            u.add_annotations = note("note");
            if u.add_annotations.is_empty() {
                return Err("the note is empty".into());
            }
        }
        other => return Err(format!("unknown action {other:?}")),
    }
    Ok(u)
}

/// True for what [`session::random_token`] makes: 64 hex digits.
fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn flatten<T>(r: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Backend(format!("report store call failed: {e}")))?
}

/// The request's cookies, as name/value pairs.
fn cookies(req: &Request<Incoming>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in req.headers().get_all(COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

fn cookie<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The first value of `name` in a form ("" when absent).
fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Reads a URL-encoded form body of at most [`MAX_FORM_BYTES`].
async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, Box<Reply>> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES);
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Box::new(error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the form is over {MAX_FORM_BYTES} bytes"),
            )))
        }
    };
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// True when the form carries the session's CSRF token.
fn csrf_ok(session: &Session, form: &[(String, String)]) -> bool {
    session.csrf_matches(field(form, "csrf"))
}

fn forbidden_csrf() -> Reply {
    error_page(
        StatusCode::FORBIDDEN,
        "refused: the form's CSRF token is missing or wrong (reload the page and try again)",
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn error_page(status: StatusCode, msg: &str) -> Reply {
    let body = html::message("error", msg);
    text(status, HTML, html::page("Error", None, &body))
}

fn not_found(msg: &str) -> Reply {
    error_page(StatusCode::NOT_FOUND, msg)
}

fn not_allowed() -> Reply {
    error_page(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

/// A 303 to `to` (after a POST, the browser GETs the next page).
fn redirect(to: &'static str) -> Reply {
    let mut r = text(
        StatusCode::SEE_OTHER,
        HTML,
        format!("<a href=\"{}\">continue</a>", esc(to)),
    );
    r.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    r
}
