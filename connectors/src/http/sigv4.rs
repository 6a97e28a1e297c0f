//! AWS Signature Version 4: every request is signed with the secret access key (method, URL,
//! headers, body hash and time), by the `aws-sigv4` crate, on every attempt (a retried request
//! gets a fresh `X-Amz-Date`).

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::{HeaderName, HeaderValue};

use weir_schemas::net::api::{ApiClient, ApiError, Auth, RequestToSign};
use weir_schemas::net::Secret;

/// Signs requests with AWS SigV4 (`Authorization: AWS4-HMAC-SHA256 Credential=…`, `X-Amz-Date`,
/// and `X-Amz-Security-Token` for temporary credentials).
pub struct SigV4Auth {
    credentials: Credentials,
    region: String,
    service: String,
}

impl SigV4Auth {
    /// Signs for `service` (e.g. `cloudtrail`) in `region` with an access key, and the session
    /// token of temporary credentials.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &Secret,
        session_token: Option<&Secret>,
        region: &str,
        service: &str,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key.expose(),
            session_token.map(|t| t.expose().to_string()),
            None,
            "weir",
        );
        SigV4Auth { credentials, region: region.to_string(), service: service.to_string() }
    }

    /// The signature headers of a request at `time`.
    pub fn signature_at(
        &self,
        request: &RequestToSign<'_>,
        time: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        let invalid = |reason: String| ApiError::Invalid { what: "signing the request (AWS SigV4)".into(), reason };
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| invalid(e.to_string()))?
            .into();
        let mut headers = Vec::new();
        for (name, value) in request.headers {
            let value = value.to_str().map_err(|_| invalid(format!("header {name} is not text")))?;
            headers.push((name.as_str(), value));
        }
        let signable = SignableRequest::new(
            request.method.as_str(),
            request.url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(request.body),
        )
        .map_err(|e| invalid(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|e| invalid(e.to_string()))?.into_parts();
        let (signed, _params) = instructions.into_parts();
        let mut out = Vec::new();
        for header in signed {
            let name = HeaderName::from_bytes(header.name().as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let mut value =
                HeaderValue::from_str(header.value()).map_err(|_| invalid(format!("header {name} is not text")))?;
            // The Authorization header is derived from the secret; the token is one.
            value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
            out.push((name, value));
        }
        Ok(out)
    }
}

#[async_trait]
impl Auth for SigV4Auth {
    async fn headers(&self, _client: &ApiClient) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        Ok(Vec::new())
    }

    fn sign(&self, request: &RequestToSign<'_>) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        self.signature_at(request, SystemTime::now())
    }
}
