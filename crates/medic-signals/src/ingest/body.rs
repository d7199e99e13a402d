//! Request bodies: bounded decompression, so a small compressed body cannot expand into
//! unbounded memory (a gzip bomb is refused, not buffered).

use std::io::Read;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("body is not valid gzip: {0}")]
    NotGzip(String),
    #[error("body is not valid snappy (block format): {0}")]
    NotSnappy(String),
    #[error("unsupported content-encoding `{0}`: expected gzip, deflate, snappy or identity")]
    UnsupportedEncoding(String),
}

/// Decompresses gzip, reading at most `limit` bytes of output.
pub fn gunzip_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    read_bounded(
        flate2::read::MultiGzDecoder::new(data),
        limit,
        BodyError::NotGzip,
    )
}

/// Decompresses zlib `deflate` (as HTTP means it), reading at most `limit` bytes of output.
pub fn inflate_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    read_bounded(
        flate2::read::ZlibDecoder::new(data),
        limit,
        BodyError::NotGzip,
    )
}

fn read_bounded(
    reader: impl Read,
    limit: usize,
    bad: fn(String) -> BodyError,
) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| bad(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// Decompresses the snappy block format (what remote_write sends). The decoded length is
/// read from the header first, so an oversized claim is refused before allocating.
pub fn unsnappy_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let len = snap::raw::decompress_len(data).map_err(|e| BodyError::NotSnappy(e.to_string()))?;
    if len > limit {
        return Err(BodyError::DecompressedTooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| BodyError::NotSnappy(e.to_string()))
}

/// Decodes a body by its `Content-Encoding` (absent or `identity`: as is).
pub fn decode_content(
    encoding: Option<&str>,
    data: Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => {
            if data.len() > limit {
                return Err(BodyError::DecompressedTooLarge { limit });
            }
            Ok(data)
        }
        Some("gzip") | Some("x-gzip") => gunzip_bounded(&data, limit),
        Some("deflate") => inflate_bounded(&data, limit),
        Some("snappy") => unsnappy_bounded(&data, limit),
        Some(other) => Err(BodyError::UnsupportedEncoding(
            other.chars().take(40).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_round_trip_and_bomb() {
        assert_eq!(gunzip_bounded(&gz(b"hello"), 5).unwrap(), b"hello");
        let bomb = gz(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            gunzip_bounded(&bomb, 1 << 20),
            Err(BodyError::DecompressedTooLarge { limit: 1 << 20 })
        );
        assert!(matches!(
            gunzip_bounded(b"not gzip", 100),
            Err(BodyError::NotGzip(_))
        ));
    }

    #[test]
    fn snappy_claims_are_checked_before_allocating() {
        let data = snap::raw::Encoder::new()
            .compress_vec(&[7u8; 1000])
            .unwrap();
        assert_eq!(unsnappy_bounded(&data, 1000).unwrap().len(), 1000);
        assert_eq!(
            unsnappy_bounded(&data, 999),
            Err(BodyError::DecompressedTooLarge { limit: 999 })
        );
        assert!(matches!(
            unsnappy_bounded(b"\xff\xff\xff\xff\x0f junk", 100),
            Err(BodyError::NotSnappy(_) | BodyError::DecompressedTooLarge { .. })
        ));
        assert!(matches!(
            decode_content(Some("br"), vec![], 10),
            Err(BodyError::UnsupportedEncoding(_))
        ));
    }
}
