//! What the S3 adapter's requests carry on the wire (s3s-fs answers them, and checks a
//! checksum it is given): every write a checksum even with the SDK's own default off, as
//! `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` turns it off (the archive bucket's
//! Object Lock refuses a write without one), and presigned links that sign no header but
//! `host`, the one a browser sends.

mod common;

use audit::domain::timestamp::Timestamp;
use audit::ports::{BlobStore, Condition};
use audit_aws::s3::{Bucket, MULTIPART_CHUNK};
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RequestChecksumCalculation, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use std::sync::{Arc, Mutex};

/// A request as sent: method, URI, headers (names lowercase).
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
}

impl Sent {
    /// A checksum in a header, or announced as the trailer of an aws-chunked body.
    fn has_checksum(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.starts_with("x-amz-checksum-") || (n == "x-amz-trailer" && v.starts_with("x-amz-checksum-"))
        })
    }

    /// A write of object bytes: PutObject or UploadPart.
    fn writes_bytes(&self) -> bool {
        self.method == "PUT"
    }
}

/// Records every request the client sends.
#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Sent>>>);

impl Recorder {
    fn take(&self) -> Vec<Sent> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = context.request();
        let headers = r.headers().iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned())).collect();
        let sent = Sent { method: r.method().to_owned(), uri: r.uri().to_owned(), headers };
        self.0.lock().map_err(|e| e.to_string())?.push(sent);
        Ok(())
    }
}

/// The archive bucket through a client configured as `AWS_REQUEST_CHECKSUM_CALCULATION=
/// when_required` configures it: the SDK computes no checksum unless an operation requires
/// one or the caller names an algorithm.
async fn bucket(recorder: &Recorder) -> (Bucket, aws_sdk_s3::Client) {
    let conf = aws_sdk_s3::config::Builder::from(&common::sdk().await)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .interceptor(recorder.clone())
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    (Bucket::new(client.clone(), common::data::bucket_name()), client)
}

#[tokio::test]
async fn every_write_carries_a_checksum_even_when_the_sdk_default_is_off() {
    let recorder = Recorder::default();
    let (bucket, client) = bucket(&recorder).await;
    let prefix = format!("checksums/{}", uuid::Uuid::now_v7().simple());

    // Given: the setting is in force (a write that names no algorithm goes without)
    client
        .put_object()
        .bucket(bucket.name())
        .key(format!("{prefix}/control"))
        .body(b"no checksum asked".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let control = recorder.take();
    assert!(control.iter().filter(|s| s.writes_bytes()).all(|s| !s.has_checksum()), "{control:?}");

    // When: the adapter writes a small object, a file in parts, and a streamed upload
    bucket
        .put_bytes(&format!("{prefix}/manifest.json"), b"{}".to_vec(), "application/json", Condition::Absent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("s3-requests-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("part.parquet");
    let size = usize::try_from(MULTIPART_CHUNK).unwrap_or(usize::MAX) + 1024 * 1024;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap_or_else(|e| panic!("{e}"));
    let key = format!("{prefix}/part.parquet");
    bucket.put_file(&key, &file, "application/octet-stream", Condition::Absent).await.unwrap_or_else(|e| panic!("{e}"));
    let mut upload = bucket.upload(&format!("{prefix}/export.csv"), "text/csv", Some("export.csv"));
    upload.finish(b"a,b\n1,2\n".to_vec()).await.unwrap_or_else(|e| panic!("{e}"));
    drop(upload);
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));

    // Then: each PutObject and UploadPart carried one, and s3s-fs kept the bytes
    let sent = recorder.take();
    let writes: Vec<&Sent> = sent.iter().filter(|s| s.writes_bytes()).collect();
    let parts = writes.iter().filter(|s| s.uri.contains("partNumber=")).count();
    assert_eq!((writes.len(), parts), (4, 2), "{sent:?}");
    for s in &writes {
        assert!(s.has_checksum(), "{} {} went without a checksum: {:?}", s.method, s.uri, s.headers);
    }
    let (read, _) = bucket.get_bytes(&key).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
    assert!(read == content, "the parts read back differ");
}

#[tokio::test]
async fn a_presigned_link_signs_only_the_host_and_works_as_a_bare_get() {
    let recorder = Recorder::default();
    let (bucket, _) = bucket(&recorder).await;
    let key = format!("links/{}/export.csv", uuid::Uuid::now_v7().simple());
    bucket.put_bytes(&key, b"a,b\n".to_vec(), "text/csv", Condition::None).await.unwrap_or_else(|e| panic!("{e}"));

    let until = Timestamp::from_micros(Timestamp::now().micros() + 300_000_000).unwrap_or(Timestamp::MAX);
    let url = bucket.presign_get(&key, until).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();

    let signed: Vec<&str> = url.split(['?', '&']).filter_map(|p| p.strip_prefix("X-Amz-SignedHeaders=")).collect();
    assert_eq!(signed, ["host"], "{url}");
    // As a browser follows a link: no header of ours
    let resp = reqwest::get(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.unwrap_or_default().as_ref(), b"a,b\n");
}
