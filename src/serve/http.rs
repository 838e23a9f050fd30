//! The routes: `/probe/NAME` (and `/livez`, `/readyz`, `/startupz`), `/metrics`; GET and HEAD
//! only. Bodies are small and built whole, so every response is a `Full` body.

use std::{convert::Infallible, sync::Arc};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    Method, Request, Response, StatusCode,
};

use crate::{logging::SERVE, report::verdict_line, trace::Trace};

use super::{
    worker::{Answer, Waited},
    App,
};

type Reply = Response<Full<Bytes>>;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
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
    let json = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/json")));
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
    out.push_str("  /metrics\n");
    out
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
