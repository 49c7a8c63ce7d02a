//! The remote-write 1.0 protobuf messages, encoded by hand (no prost, no generated code).
//!
//! Owns: the bytes of `prometheus.WriteRequest` with its `TimeSeries`, `Label` and `Sample`
//! messages, and a decoder of the same subset (for tests and tools). Must not touch: HTTP,
//! compression, the TSDB.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }          (metadata = 3 is not sent)
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }   // ms since the epoch
//! ```
//! A series' labels are encoded once ([`encode_labels`]) and cached by the sender, so a batch
//! costs one copy of those bytes plus 11–13 bytes per sample, with no allocation per sample.

use crate::model::Sample;

const LEN: u8 = 2; // wire type "length-delimited"
const I64: u8 = 1; // wire type "64-bit"
const VARINT: u8 = 0;

fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push(tag(field, LEN));
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends the `labels` fields (field 1 of TimeSeries) for `pairs`, in the order given
/// (remote write wants them sorted by name).
pub fn encode_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, out: &mut Vec<u8>) {
    for (n, v) in pairs {
        let inner =
            1 + varint_len(n.len() as u64) + n.len() + 1 + varint_len(v.len() as u64) + v.len();
        out.push(tag(1, LEN));
        put_varint(out, inner as u64);
        put_bytes(out, 1, n.as_bytes());
        put_bytes(out, 2, v.as_bytes());
    }
}

fn sample_len(s: &Sample) -> usize {
    1 + 8 + 1 + varint_len(s.t as u64)
}

/// Encoded size of one TimeSeries field (tag and length included).
pub fn series_len(labels: &[u8], samples: &[Sample]) -> usize {
    let inner = labels.len() + samples.iter().map(|s| 2 + sample_len(s)).sum::<usize>();
    1 + varint_len(inner as u64) + inner
}

/// Appends one `timeseries` field (field 1 of WriteRequest) with pre-encoded `labels`.
pub fn encode_series(labels: &[u8], samples: &[Sample], out: &mut Vec<u8>) {
    let inner = labels.len() + samples.iter().map(|s| 2 + sample_len(s)).sum::<usize>();
    out.push(tag(1, LEN));
    put_varint(out, inner as u64);
    out.extend_from_slice(labels);
    for s in samples {
        out.push(tag(2, LEN));
        out.push(sample_len(s) as u8); // at most 20: one byte
        out.push(tag(1, I64));
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        out.push(tag(2, VARINT));
        put_varint(out, s.t as u64);
    }
}

/// A decoded TimeSeries.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for k in 0..10 {
            let Some(&b) = self.b.get(self.i) else {
                return Err("protobuf: truncated varint".into());
            };
            self.i += 1;
            v |= u64::from(b & 0x7f) << (7 * k);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("protobuf: varint too long".into())
    }
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.i >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(self.take(8)?.try_into().map_err(|_| "protobuf")?),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "protobuf: length")?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Other
            }
            w => return Err(format!("protobuf: unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, f)))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.i.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err("protobuf: field runs past the end".into());
        };
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }
}

enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Other,
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "protobuf: label is not UTF-8".to_string())
}

/// Decodes a WriteRequest's time series (other fields are skipped). Never panics.
pub fn decode_write_request(b: &[u8]) -> Result<Vec<DecodedSeries>, String> {
    let mut out = Vec::new();
    let mut r = Reader { b, i: 0 };
    while let Some((num, f)) = r.field()? {
        let (1, Field::Bytes(ts)) = (num, f) else {
            continue;
        };
        let mut series = DecodedSeries {
            labels: Vec::new(),
            samples: Vec::new(),
        };
        let mut tr = Reader { b: ts, i: 0 };
        while let Some((num, f)) = tr.field()? {
            match (num, f) {
                (1, Field::Bytes(l)) => {
                    let (mut name, mut value) = (String::new(), String::new());
                    let mut lr = Reader { b: l, i: 0 };
                    while let Some((num, f)) = lr.field()? {
                        match (num, f) {
                            (1, Field::Bytes(s)) => name = string(s)?,
                            (2, Field::Bytes(s)) => value = string(s)?,
                            _ => {}
                        }
                    }
                    series.labels.push((name, value));
                }
                (2, Field::Bytes(s)) => {
                    let mut sample = Sample { t: 0, v: 0.0 };
                    let mut sr = Reader { b: s, i: 0 };
                    while let Some((num, f)) = sr.field()? {
                        match (num, f) {
                            (1, Field::Fixed64(v)) => sample.v = f64::from_le_bytes(v),
                            (2, Field::Varint(t)) => sample.t = t as i64,
                            _ => {}
                        }
                    }
                    series.samples.push(sample);
                }
                _ => {}
            }
        }
        out.push(series);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_bytes_protoc_would() {
        // TimeSeries{labels:[{__name__,up}], samples:[{value:1, timestamp:1000}]} as a
        // WriteRequest, bytes worked out from the protobuf encoding rules by hand.
        let mut labels = Vec::new();
        encode_labels([("__name__", "up")].into_iter(), &mut labels);
        assert_eq!(
            labels,
            [&[0x0a, 14, 0x0a, 8][..], b"__name__", &[0x12, 2], b"up"].concat()
        );
        let mut out = Vec::new();
        let s = [Sample { t: 1000, v: 1.0 }];
        encode_series(&labels, &s, &mut out);
        let sample = [
            &[0x12, 12, 0x09][..],
            &1.0f64.to_le_bytes(),
            &[0x10, 0xe8, 0x07],
        ]
        .concat();
        assert_eq!(out, [&[0x0a, 30][..], &labels, &sample].concat());
        assert_eq!(out.len(), series_len(&labels, &s));
    }

    #[test]
    fn round_trips_negative_timestamps_nan_and_many_series() {
        let mut out = Vec::new();
        let mut want = Vec::new();
        let names: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let mut labels = Vec::new();
            let pairs = [("__name__", name.as_str()), ("job", "x")];
            encode_labels(pairs.into_iter(), &mut labels);
            let samples: Vec<Sample> = (0..i % 5)
                .map(|k| Sample {
                    t: (k as i64 - 2) * 1_700_000_000_123,
                    v: if k == 3 { f64::NAN } else { k as f64 * -0.5 },
                })
                .collect();
            encode_series(&labels, &samples, &mut out);
            want.push((pairs, samples));
        }
        let got = decode_write_request(&out).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, (pairs, samples)) in got.iter().zip(&want) {
            let p: Vec<(&str, &str)> = g
                .labels
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            assert_eq!(p, pairs);
            assert_eq!(g.samples.len(), samples.len());
            for (a, b) in g.samples.iter().zip(samples) {
                assert_eq!((a.t, a.v.to_bits()), (b.t, b.v.to_bits()));
            }
        }
    }

    #[test]
    fn varint_len_matches_the_encoding() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, 1 << 40, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let g: Vec<u8> = (0..rng.usize(0..48)).map(|_| rng.u8(..)).collect();
            let _ = decode_write_request(&g);
        }
        assert!(decode_write_request(&[0x0a, 50, 1]).is_err());
        assert!(decode_write_request(&[0x0a, 2, 0x0a, 0xff]).is_err());
    }
}
