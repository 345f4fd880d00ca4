//! Length-delimited protobuf fields written by hand: where bytes already encoded go inside
//! another message without being decoded (routes into their RouteConfiguration, resources into
//! their `Any` and delta `Resource`, map entries rewritten in key order), and where the buffer
//! is sized exactly before anything is written.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

/// The bytes field `number`, holding `length` bytes, takes.
pub fn len(number: u32, length: usize) -> usize {
    key_len(number) + encoded_len_varint(length as u64) + length
}

/// Writes field `number`'s key and `length`; the caller writes the `length` bytes after them.
pub fn put_header(out: &mut Vec<u8>, number: u32, length: usize) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(length as u64, out);
}

/// Writes field `number` holding `payload`.
pub fn put(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_header(out, number, payload.len());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_as_long_as_prost_says_and_reads_back() {
        for (number, size) in [(1, 0), (2, 127), (3, 128), (19, 16_384), (100_000, 5)] {
            let payload = vec![7u8; size];
            let mut out = Vec::new();
            put(&mut out, number, &payload);
            assert_eq!(out.len(), len(number, size));
            assert_eq!(out.len(), prost::encoding::bytes::encoded_len(number, &payload));
            let mut buf = out.as_slice();
            let (read, wire_type) = prost::encoding::decode_key(&mut buf).unwrap();
            assert_eq!((read, wire_type), (number, WireType::LengthDelimited));
            assert_eq!(prost::encoding::decode_varint(&mut buf).unwrap() as usize, size);
            assert_eq!(buf, payload.as_slice());
        }
    }
}
