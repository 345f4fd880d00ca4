//! Responses as they go on the wire. Their resources are the snapshot's pre-encoded bytes, written
//! field by field into the gRPC frame: no stream ever re-encodes a resource.

use crate::snapshot::{Entry, XdsType};
use bytes::{Buf, BufMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use std::marker::PhantomData;
use std::sync::Arc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// A state-of-the-world `DiscoveryResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SotwResponse {
    pub xds_type: XdsType,
    pub version: String,
    pub nonce: String,
    pub resources: Vec<Entry>,
}

/// A `DeltaDiscoveryResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaResponse {
    pub xds_type: XdsType,
    pub system_version: String,
    pub nonce: String,
    pub resources: Vec<Entry>,
    pub removed: Vec<Arc<str>>,
}

/// Something that can write itself as a protobuf message.
pub trait WireMessage: Send + 'static {
    fn encode_to(&self, buf: &mut impl BufMut);
}

fn string_field(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.put_slice(value.as_bytes());
    }
}

fn message_field(tag: u32, encoded: &[u8], buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(encoded.len() as u64, buf);
    buf.put_slice(encoded);
}

impl SotwResponse {
    pub fn resource_names(&self) -> Vec<&str> {
        self.resources.iter().map(|e| &*e.name).collect()
    }
}

impl WireMessage for SotwResponse {
    // discovery.proto: version_info = 1, resources = 2, type_url = 4, nonce = 5.
    fn encode_to(&self, buf: &mut impl BufMut) {
        string_field(1, &self.version, buf);
        for entry in &self.resources {
            message_field(2, &entry.any, buf);
        }
        string_field(4, self.xds_type.type_url(), buf);
        string_field(5, &self.nonce, buf);
    }
}

impl WireMessage for DeltaResponse {
    // discovery.proto: system_version_info = 1, resources = 2, type_url = 4, nonce = 5,
    // removed_resources = 6.
    fn encode_to(&self, buf: &mut impl BufMut) {
        string_field(1, &self.system_version, buf);
        for entry in &self.resources {
            message_field(2, &entry.delta, buf);
        }
        string_field(4, self.xds_type.type_url(), buf);
        string_field(5, &self.nonce, buf);
        for name in &self.removed {
            string_field(6, name, buf);
        }
    }
}

/// Upper bound of the encoded size, to reserve the frame once.
fn encoded_size(resources: &[Entry], delta: bool, strings: usize) -> usize {
    let body: usize = resources
        .iter()
        .map(|e| {
            let len = if delta { e.delta.len() } else { e.any.len() };
            1 + encoded_len_varint(len as u64) + len
        })
        .sum();
    body + strings + 64
}

/// The gRPC codec for xDS streams: requests decode with prost, responses write their
/// pre-encoded parts.
pub struct XdsCodec<Req, Resp>(PhantomData<(Req, Resp)>);

impl<Req, Resp> Default for XdsCodec<Req, Resp> {
    fn default() -> Self {
        XdsCodec(PhantomData)
    }
}

impl<Req: Message + Default + Send + 'static, Resp: WireMessage + Sized> Codec for XdsCodec<Req, Resp>
where
    Resp: SizeHint,
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = WireEncoder<Resp>;
    type Decoder = ProstDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        WireEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

pub trait SizeHint {
    fn size_hint(&self) -> usize;
}

impl SizeHint for SotwResponse {
    fn size_hint(&self) -> usize {
        encoded_size(&self.resources, false, self.version.len() + self.nonce.len() + self.xds_type.type_url().len())
    }
}

impl SizeHint for DeltaResponse {
    fn size_hint(&self) -> usize {
        let removed: usize = self.removed.iter().map(|n| n.len() + 4).sum();
        encoded_size(&self.resources, true, self.system_version.len() + self.nonce.len() + 100 + removed)
    }
}

pub struct WireEncoder<T>(PhantomData<T>);

impl<T: WireMessage + SizeHint> Encoder for WireEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.size_hint());
        item.encode_to(dst);
        Ok(())
    }
}

pub struct ProstDecoder<T>(PhantomData<T>);

impl<T: Message + Default> Decoder for ProstDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        let message =
            T::decode(src.copy_to_bytes(src.remaining())).map_err(|err| Status::invalid_argument(err.to_string()))?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;
    use crate::xds::{Resource, Resources};
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};

    fn entries() -> Vec<Entry> {
        let resources = Resources {
            clusters: vec![Resource::encode("a", &"x".to_string()), Resource::encode("b", &"y".to_string())],
            ..Default::default()
        };
        Snapshot::new(resources, 1, None).of(XdsType::Cluster).entries.values().cloned().collect()
    }

    #[test]
    fn sotw_encoding_is_a_valid_discovery_response() {
        let response =
            SotwResponse { xds_type: XdsType::Cluster, version: "v1".into(), nonce: "7".into(), resources: entries() };
        let mut buf = Vec::new();
        response.encode_to(&mut buf);
        assert!(buf.len() <= response.size_hint());
        let decoded = DiscoveryResponse::decode(buf.as_slice()).unwrap();
        assert_eq!((decoded.version_info.as_str(), decoded.nonce.as_str()), ("v1", "7"));
        assert_eq!(decoded.type_url, XdsType::Cluster.type_url());
        assert_eq!(decoded.resources.len(), 2);
        assert_eq!(decoded.resources[0].type_url, XdsType::Cluster.type_url());
    }

    #[test]
    fn delta_encoding_is_a_valid_delta_discovery_response() {
        let response = DeltaResponse {
            xds_type: XdsType::Cluster,
            system_version: "3".into(),
            nonce: "9".into(),
            resources: entries(),
            removed: vec![Arc::from("gone")],
        };
        let mut buf = Vec::new();
        response.encode_to(&mut buf);
        let decoded = DeltaDiscoveryResponse::decode(buf.as_slice()).unwrap();
        assert_eq!(decoded.removed_resources, ["gone"]);
        assert_eq!(decoded.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(!decoded.resources[0].version.is_empty());
    }
}
