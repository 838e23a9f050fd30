//! The routes: `/probe/NAME` (and `/livez`, `/readyz`, `/startupz`), `/metrics`, and the status
//! page (`/`, `/explain/NAME`: `status`); GET and HEAD only. Bodies are small and built whole,
//! so every response is a `Full` body.

use std::{convert::Infallible, sync::Arc};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    Method, Request, Response, StatusCode,
};

use crate::{logging::SERVE, report::verdict_line, trace::Trace};

use super::{
    status::{self, Wants},
    worker::{Answer, Waited},
    App,
};

type Reply = Response<Full<Bytes>>;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
/// The status page has no script and loads nothing: a browser is told to run none and load
/// nothing, so that even a reason that slipped past escaping could not act.
const HTML_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The Kubernetes-style aliases and the probe each one answers for.
pub const ALIASES: [(&str, &str); 3] = [
    ("/livez", "liveness"),
    ("/readyz", "readiness"),
    ("/startupz", "startup"),
];

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let reply = route(&app, &req).await;
    log::debug!(
        target: SERVE,
        "{} {} -> {}",
        req.method(),
        req.uri().path(),
        reply.status().as_u16()
    );
    Ok(reply)
}

async fn route(app: &App, req: &Request<Incoming>) -> Reply {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut reply = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here: use GET or HEAD\n", req.method()),
        );
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let path = req.uri().path();
    if path == "/metrics" {
        return reply(StatusCode::OK, OPENMETRICS, app.metrics.encode());
    }
    let wants = Wants::of(&accept(req));
    if path == "/" {
        return match wants {
            Wants::Html => html(status::page_html(
                app,
                status::refresh_of(req.uri().query()),
            )),
            Wants::Json => reply(StatusCode::OK, JSON, status::page_json(app)),
            Wants::Text => text(StatusCode::OK, status::page_text(app)),
        };
    }
    if let Some(name) = path.strip_prefix("/explain/") {
        let Some(probe) = app.probe(name) else {
            return text(StatusCode::NOT_FOUND, not_found(app, path));
        };
        return match wants {
            Wants::Html => html(status::report_html(&probe)),
            Wants::Json => reply(StatusCode::OK, JSON, status::report_json(&probe)),
            Wants::Text => text(StatusCode::OK, status::report_plain(&probe)),
        };
    }
    let name = match path.strip_prefix("/probe/") {
        Some(name) => Some(name),
        None => ALIASES
            .iter()
            .find(|(route, _)| *route == path)
            .map(|(_, name)| *name),
    };
    let Some(probe) = name.and_then(|name| app.probe(name)) else {
        return text(StatusCode::NOT_FOUND, not_found(app, path));
    };
    let json = wants == Wants::Json;
    match probe.answer(app.cache).await {
        Waited::Done(answer) => {
            let status = status_of(&answer);
            if json {
                let mut doc = probe.reporter.json(&answer.verdict, &answer.trace);
                doc["probe"] = probe.name.clone().into();
                doc["age_ms"] = (answer.at.elapsed().as_secs_f64() * 1e3).round().into();
                reply(status, JSON, format!("{doc}\n"))
            } else {
                text(status, format!("{}\n", answer.line))
            }
        }
        Waited::Overran(verdict) => {
            if json {
                let mut doc = probe.reporter.json(&verdict, &Trace::default());
                doc["probe"] = probe.name.clone().into();
                reply(StatusCode::SERVICE_UNAVAILABLE, JSON, format!("{doc}\n"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{}\n", verdict_line(&verdict)),
                )
            }
        }
        Waited::Gone => text(
            StatusCode::NOT_FOUND,
            format!("probe {} was removed\n", probe.name),
        ),
    }
}

/// Every `Accept` header's value, joined.
fn accept(req: &Request<Incoming>) -> String {
    let values: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(",")
}

fn status_of(answer: &Answer) -> StatusCode {
    if answer.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A 404 that lists what does exist.
fn not_found(app: &App, path: &str) -> String {
    let names = app.names();
    let mut out = format!("no such route: {path}\nroutes:\n");
    for name in &names {
        out.push_str(&format!("  /probe/{name}\n"));
    }
    for (route, name) in ALIASES {
        if names.iter().any(|n| n == name) {
            out.push_str(&format!("  {route}\n"));
        }
    }
    out.push_str("  /explain/NAME\n  /metrics\n  / (the status page)\n");
    out
}

fn html(body: String) -> Reply {
    let mut reply = reply(StatusCode::OK, HTML, body);
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(HTML_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

fn text(status: StatusCode, body: String) -> Reply {
    reply(status, TEXT, body)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A health answer is about this moment: no proxy or client may reuse it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}
