//! Weir's HTTP server (`[server] listen = "..."`): sources that receive pushed events (Okta
//! Event Hooks, EventBridge) each under their configured `path`, plus `GET /metrics` (every
//! stage's counters in the Prometheus text format) and `GET /health`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

/// A push source's routes, to be served under `path`.
pub struct Endpoint {
    /// The source's name.
    pub source: String,
    /// Where its routes go, e.g. `/hooks/okta`.
    pub path: String,
    /// Its routes, relative to `path`.
    pub router: Router,
}

/// Renders the metrics page.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Starts the server; it stops when `shutdown` turns true. Fails when the address cannot be
/// bound (in use, not local).
pub async fn start(
    listen: SocketAddr,
    endpoints: Vec<Endpoint>,
    metrics: MetricsRenderer,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut app = Router::new().route("/health", get(|| async { "ok\n" })).route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], metrics()) }
        }),
    );
    for endpoint in endpoints {
        tracing::info!(source = %endpoint.source, path = %endpoint.path, %listen, "receiving pushed events");
        app = app.nest(&endpoint.path, endpoint.router);
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "HTTP server listening");
    Ok(tokio::spawn(async move {
        let stopped = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    }))
}
