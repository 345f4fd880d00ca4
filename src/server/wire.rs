//! Responses as they go on the wire, and the gRPC framing around them.
//!
//! A response is a few bytes of its own (version, nonce, type URL) around resource bytes that
//! the snapshot encoded once; the response body hands those very buffers (reference-counted
//! `Bytes`) to HTTP/2, so a thousand streams sending the same 1 MB of clusters hold one copy.

use crate::snapshot::{Entry, TypeSnapshot};
use crate::xds::XdsType;
use bytes::Buf;
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::codec::{DecodeBuf, Decoder};

/// The resources of one response.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Every resource of the type, in name order: sent as the snapshot's shared block.
    All(Arc<TypeSnapshot>),
    /// These resources (each still the snapshot's shared bytes), in name order too: make-before-break
    /// walks a response beside the last one by name.
    Subset(Vec<Entry>),
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::All(all) => all.entries.len(),
            Payload::Subset(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn entries(&self) -> Box<dyn Iterator<Item = &Entry> + '_> {
        match self {
            Payload::All(all) => Box::new(all.entries.values()),
            Payload::Subset(entries) => Box::new(entries.iter()),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.entries().map(|e| e.name.to_string()).collect()
    }

    fn chunks(&self, delta: bool, out: &mut Vec<Bytes>) {
        match self {
            Payload::All(all) => out.extend_from_slice(if delta { all.delta_block() } else { all.sotw_block() }),
            Payload::Subset(entries) => out.extend(
                entries.iter().flat_map(|e| if delta { &e.delta_field } else { &e.sotw_field }.parts().cloned()),
            ),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

/// A state-of-the-world `DiscoveryResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct SotwResponse {
    pub xds_type: XdsType,
    pub version: String,
    pub nonce: String,
    pub resources: Payload,
}

/// A `DeltaDiscoveryResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaResponse {
    pub xds_type: XdsType,
    pub system_version: String,
    pub nonce: String,
    pub resources: Payload,
    pub removed: Vec<Arc<str>>,
}

fn string_field(tag: u32, value: &str, buf: &mut BytesMut) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.put_slice(value.as_bytes());
    }
}

impl SotwResponse {
    /// The encoded message, in parts. discovery.proto: version_info = 1, resources = 2,
    /// type_url = 4, nonce = 5 (field order is free in protobuf).
    pub fn chunks(&self) -> Vec<Bytes> {
        let mut head = BytesMut::new();
        string_field(1, &self.version, &mut head);
        string_field(4, self.xds_type.type_url(), &mut head);
        string_field(5, &self.nonce, &mut head);
        let mut out = vec![head.freeze()];
        self.resources.chunks(false, &mut out);
        out
    }
}

impl DeltaResponse {
    /// The encoded message, in parts. discovery.proto: system_version_info = 1, resources = 2,
    /// type_url = 4, nonce = 5, removed_resources = 6.
    pub fn chunks(&self) -> Vec<Bytes> {
        let mut head = BytesMut::new();
        string_field(1, &self.system_version, &mut head);
        string_field(4, self.xds_type.type_url(), &mut head);
        string_field(5, &self.nonce, &mut head);
        for name in &self.removed {
            string_field(6, name, &mut head);
        }
        let mut out = vec![head.freeze()];
        self.resources.chunks(true, &mut out);
        out
    }
}

/// How a stream ends: the gRPC status its trailers carry. Set by the stream task before it lets
/// go of the message channel; a stream that ends without one ends with `OK`.
pub type StreamEnd = Arc<std::sync::Mutex<Option<tonic::Status>>>;

/// The body of a server-streaming gRPC response: each message is a 5-byte prefix (uncompressed,
/// big-endian length) and its parts; the stream ends with the trailers of its [`StreamEnd`].
pub struct GrpcResponseBody {
    messages: mpsc::Receiver<Vec<Bytes>>,
    pending: VecDeque<Bytes>,
    end: StreamEnd,
    /// Counts every message handed to HTTP/2 (written, not merely produced).
    written: Arc<std::sync::atomic::AtomicU64>,
    finished: bool,
}

impl GrpcResponseBody {
    pub fn new(
        messages: mpsc::Receiver<Vec<Bytes>>,
        end: StreamEnd,
        written: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        GrpcResponseBody { messages, pending: VecDeque::new(), end, written, finished: false }
    }
}

/// gRPC length-prefixed message framing.
pub fn message_prefix(parts: &[Bytes]) -> Bytes {
    let length: usize = parts.iter().map(Bytes::len).sum();
    let mut prefix = BytesMut::with_capacity(5);
    prefix.put_u8(0);
    prefix.put_u32(u32::try_from(length).expect("xDS messages are far below 4 GiB"));
    prefix.freeze()
}

/// Trailers for a final status (`grpc-status`, `grpc-message`), as tonic would write them.
fn trailers(status: &tonic::Status) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    trailers
}

impl http_body::Body for GrpcResponseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(part) = self.pending.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        match self.messages.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(parts)) => {
                let prefix = message_prefix(&parts);
                // Small parts are merged with the prefix; large ones go out as they are (shared).
                let mut first = BytesMut::from(&prefix[..]);
                let mut rest = parts.into_iter().peekable();
                while let Some(part) = rest.next_if(|p| p.len() < 4096) {
                    first.extend_from_slice(&part);
                }
                self.pending.extend(rest);
                self.written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(Some(Ok(Frame::data(first.freeze()))))
            }
            Poll::Ready(None) => {
                self.finished = true;
                let status = self.end.lock().expect("never poisoned").take().unwrap_or_else(|| tonic::Status::ok(""));
                Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
            }
        }
    }
}

/// Decodes requests with prost (requests are small; nothing to share there).
pub struct ProstDecoder<T>(PhantomData<T>);

impl<T> Default for ProstDecoder<T> {
    fn default() -> Self {
        ProstDecoder(PhantomData)
    }
}

impl<T: Message + Default> Decoder for ProstDecoder<T> {
    type Item = T;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, tonic::Status> {
        let message = T::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|err| tonic::Status::invalid_argument(err.to_string()))?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use crate::xds::{Resource, Resources};
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};

    fn snapshot() -> Snapshot {
        let resources = Resources::default().with(
            XdsType::Cluster,
            vec![Resource::encode("a", &"x".to_string()), Resource::encode("b", &"y".to_string())],
        );
        Snapshot::new(resources, 1, None)
    }

    fn joined(chunks: Vec<Bytes>) -> Vec<u8> {
        chunks.concat()
    }

    #[test]
    fn sotw_chunks_form_a_valid_discovery_response() {
        let snapshot = snapshot();
        for payload in [
            Payload::All(snapshot.of(XdsType::Cluster).clone()),
            Payload::Subset(snapshot.of(XdsType::Cluster).entries.values().cloned().collect()),
        ] {
            let response = SotwResponse {
                xds_type: XdsType::Cluster,
                version: "v1".into(),
                nonce: "7".into(),
                resources: payload,
            };
            let decoded = DiscoveryResponse::decode(joined(response.chunks()).as_slice()).unwrap();
            assert_eq!((decoded.version_info.as_str(), decoded.nonce.as_str()), ("v1", "7"));
            assert_eq!(decoded.type_url, XdsType::Cluster.type_url());
            assert_eq!(decoded.resources.len(), 2);
        }
    }

    #[test]
    fn delta_chunks_form_a_valid_delta_discovery_response() {
        let snapshot = snapshot();
        let response = DeltaResponse {
            xds_type: XdsType::Cluster,
            system_version: "3".into(),
            nonce: "9".into(),
            resources: Payload::All(snapshot.of(XdsType::Cluster).clone()),
            removed: vec![Arc::from("gone")],
        };
        let decoded = DeltaDiscoveryResponse::decode(joined(response.chunks()).as_slice()).unwrap();
        assert_eq!(decoded.removed_resources, ["gone"]);
        assert_eq!(decoded.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn the_body_ends_with_the_status_it_was_given_and_counts_what_it_wrote() {
        use http_body_util::BodyExt;
        let (tx, rx) = mpsc::channel(1);
        let end: StreamEnd = Default::default();
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = GrpcResponseBody::new(rx, end.clone(), written.clone());
        tx.try_send(vec![Bytes::from_static(b"xyz")]).unwrap();
        *end.lock().unwrap() = Some(tonic::Status::unavailable("shutting down"));
        drop(tx);
        let collected = futures::executor::block_on(body.collect()).unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(&collected.to_bytes()[..], &[0, 0, 0, 0, 3, b'x', b'y', b'z']);
        assert_eq!(trailers["grpc-status"], "14");
        assert_eq!(trailers["grpc-message"], "shutting%20down", "percent-encoded, as gRPC says");
        assert_eq!(written.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn message_prefix_is_grpc_framing() {
        assert_eq!(&message_prefix(&[Bytes::from_static(b"abc"), Bytes::from_static(b"de")])[..], &[0, 0, 0, 0, 5]);
    }
}
