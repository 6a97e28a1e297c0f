//! The HTTP machinery sources use: the shared API client, auth and rate-limit handling of
//! [`weir_schemas::net::api`] (also used by sinks for OAuth tokens), plus AWS Signature Version 4
//! (only sources sign AWS requests).

mod sigv4;

pub use sigv4::SigV4Auth;
pub use weir_schemas::net::api::{
    server_wait, ApiClient, ApiError, ApiRequest, ApiResponse, Auth, HeaderAuth, HttpOptions, JwtKey, NoAuth,
    OAuthClientCredentials, OAuthGrant, RequestToSign,
};
pub use weir_schemas::net::Secret;
