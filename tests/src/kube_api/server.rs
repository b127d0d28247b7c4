//! The fake API server's HTTP side: list (with `limit`/`continue` pages and label
//! selectors) and watch (`watch=true`: JSON lines over a chunked body, from a
//! resourceVersion, with bookmarks when asked, 410 Gone for a compacted version), in
//! full or metadata-only (`as=PartialObjectMetadataList`) form, and `/version`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::store::{Change, Collection, Live, Store, selector_matches};
use crate::body::{BoxError, RequestBody, full};

/// What the server shares with its handle.
#[derive(Debug)]
pub struct Shared {
    pub store: Mutex<Store>,
    /// Requests served, by collection and `list`/`watch`.
    pub requests: Mutex<HashMap<(Collection, &'static str), usize>>,
}

impl Shared {
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, collection: Collection, what: &'static str) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((collection, what))
            .or_default() += 1;
    }
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<RequestBody> {
    if req.method() != http::Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "only GET",
        );
    }
    let path = req.uri().path();
    if path == "/version" {
        return json_response(
            &json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake" }),
        );
    }
    let Some(collection) = Collection::from_path(path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", &format!("no {path}"));
    };
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    Some((decode(k)?, decode(v)?))
                })
                .collect()
        })
        .unwrap_or_default();
    let metadata_only = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let form = Form {
        metadata_only,
        selector,
    };
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        shared.count(collection, "watch");
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true");
        watch(&shared, collection, from, bookmarks, form)
    } else {
        shared.count(collection, "list");
        let limit: usize = query
            .get("limit")
            .and_then(|v| v.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let offset: usize = query
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        list(&shared.store(), collection, limit, offset, &form)
    }
}

/// How objects are shown: whole or metadata only, and which ones.
#[derive(Clone, Debug)]
struct Form {
    metadata_only: bool,
    selector: String,
}

impl Form {
    fn shows(&self, object: &Value) -> bool {
        selector_matches(&self.selector, object)
    }

    fn render(&self, object: &Value) -> Value {
        if self.metadata_only {
            json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": object["metadata"],
            })
        } else {
            object.clone()
        }
    }
}

fn list(
    store: &Store,
    collection: Collection,
    limit: usize,
    offset: usize,
    form: &Form,
) -> Response<RequestBody> {
    let matching: Vec<Value> = store
        .objects
        .iter()
        .filter(|((c, _, _), o)| *c == collection && form.shows(o))
        .map(|(_, o)| form.render(o))
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let next = offset.saturating_add(page.len());
    let (kind, api_version) = if form.metadata_only {
        ("PartialObjectMetadataList", "meta.k8s.io/v1")
    } else {
        collection.list_kind()
    };
    let mut metadata = json!({ "resourceVersion": store.resource_version.to_string() });
    if next < matching.len() {
        metadata["continue"] = next.to_string().into();
    }
    json_response(&json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "items": page,
    }))
}

fn watch(
    shared: &Shared,
    collection: Collection,
    from: u64,
    bookmarks: bool,
    form: Form,
) -> Response<RequestBody> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1024);
    let (backlog, live) = {
        let store = shared.store();
        if from < store.oldest_watchable {
            let gone = json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "reason": "Expired", "code": 410,
                    "message": format!("too old resource version: {from} ({})", store.oldest_watchable),
                },
            });
            return json_lines(vec![gone]);
        }
        let backlog: Vec<Change> = store
            .history
            .iter()
            .filter(|c| c.collection == collection && c.resource_version > from)
            .cloned()
            .collect();
        (backlog, store.live.subscribe())
    };
    tokio::spawn(stream_events(
        tx, backlog, live, collection, bookmarks, form,
    ));
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    }));
    let mut response = Response::new(BodyExt::boxed(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn stream_events(
    tx: mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
    backlog: Vec<Change>,
    mut live: broadcast::Receiver<Live>,
    collection: Collection,
    bookmarks: bool,
    form: Form,
) {
    let line = |value: Value| Ok(Frame::data(Bytes::from(format!("{value}\n"))));
    let event =
        |change: &Change| json!({ "type": change.kind, "object": form.render(&change.object) });
    for change in backlog.iter().filter(|c| form.shows(&c.object)) {
        if tx.send(line(event(change))).await.is_err() {
            return;
        }
    }
    loop {
        let message = match live.recv().await {
            Ok(Live::Change(change))
                if change.collection == collection && form.shows(&change.object) =>
            {
                line(event(&change))
            }
            Ok(Live::Change(_)) => continue,
            Ok(Live::Bookmark(rv)) if bookmarks => {
                let (kind, api_version) = collection.kind();
                line(json!({
                    "type": "BOOKMARK",
                    "object": { "kind": kind, "apiVersion": api_version, "metadata": { "resourceVersion": rv.to_string() } },
                }))
            }
            Ok(Live::Bookmark(_)) => continue,
            // The body fails: hyper aborts the connection mid-stream.
            Ok(Live::Drop) | Err(broadcast::error::RecvError::Closed) => {
                let _ = tx.send(Err("watch dropped on demand".into())).await;
                return;
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = tx.send(Err("the watch fell behind".into())).await;
                return;
            }
        };
        if tx.send(message).await.is_err() {
            return;
        }
    }
}

fn json_lines(lines: Vec<Value>) -> Response<RequestBody> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut response = Response::new(full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn json_response(value: &Value) -> Response<RequestBody> {
    let mut response = Response::new(full(value.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<RequestBody> {
    let mut response = json_response(&json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "reason": reason, "message": message, "code": code.as_u16(),
    }));
    *response.status_mut() = code;
    response
}

/// Percent-decoding of a query component (`+` is a space in forms).
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
