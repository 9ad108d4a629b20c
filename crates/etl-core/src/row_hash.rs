//! The content hash of a row: blake3 over a canonical encoding.
//!
//! The encoding is independent of column order (columns are taken sorted by name) and of how a
//! JSON object orders its keys, and it is versioned: the bytes for a given row never change
//! between releases (`pinned_hashes` below fails if they do), so a new release never sees every
//! stored row as changed.
//!
//! Layout: the domain tag `etl.row.v1`, then per column `len(name) name value`, where lengths are
//! little-endian u64 and a value is a one-byte type tag followed by its bytes.

use crate::value::{Row, Value};

/// A row's content hash.
pub type RowHash = [u8; 32];

const DOMAIN: &[u8] = b"etl.row.v1\0";

/// Hashes a row.
pub fn row_hash(row: &Row) -> RowHash {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buf = buffer.borrow_mut();
        buf.clear();
        buf.extend_from_slice(DOMAIN);
        for (name, value) in row.columns() {
            put_str(&mut buf, name);
            put_value(&mut buf, value);
        }
        let hash = *blake3::hash(&buf).as_bytes();
        if buf.capacity() > 1 << 20 {
            // Do not keep a huge buffer around after one huge row.
            *buf = Vec::new();
        }
        hash
    })
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    buf.extend_from_slice(&(len as u64).to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

/// Floats are hashed by their bits, with `-0.0` taken as `0.0` and every NaN as one NaN, so that
/// values that compare equal hash equal.
fn canonical_f64_bits(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else if f.is_nan() {
        0x7ff8_0000_0000_0000
    } else {
        f.to_bits()
    }
}

fn put_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.push(0),
        Value::Bool(b) => buf.extend_from_slice(&[1, u8::from(*b)]),
        Value::Int(i) => {
            buf.push(2);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            buf.push(3);
            buf.extend_from_slice(&canonical_f64_bits(*f).to_le_bytes());
        }
        Value::Text(s) => {
            buf.push(4);
            put_str(buf, s);
        }
        Value::Json(j) => {
            buf.push(5);
            put_json(buf, j);
        }
        Value::Vector(v) => {
            buf.push(6);
            put_len(buf, v.len());
            for x in v {
                let x = if *x == 0.0 { 0.0f32 } else { *x };
                buf.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
    }
}

/// JSON is encoded structurally, object keys sorted, so the serializer's key order never matters.
fn put_json(buf: &mut Vec<u8>, json: &serde_json::Value) {
    use serde_json::Value as J;
    match json {
        J::Null => buf.push(0),
        J::Bool(b) => buf.extend_from_slice(&[1, u8::from(*b)]),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                buf.push(2);
                buf.extend_from_slice(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                buf.push(7);
                buf.extend_from_slice(&u.to_le_bytes());
            } else {
                buf.push(3);
                let f = n.as_f64().unwrap_or(f64::NAN);
                buf.extend_from_slice(&canonical_f64_bits(f).to_le_bytes());
            }
        }
        J::String(s) => {
            buf.push(4);
            put_str(buf, s);
        }
        J::Array(items) => {
            buf.push(8);
            put_len(buf, items.len());
            for item in items {
                put_json(buf, item);
            }
        }
        J::Object(map) => {
            buf.push(9);
            put_len(buf, map.len());
            if map.keys().is_sorted() {
                for (k, v) in map {
                    put_str(buf, k);
                    put_json(buf, v);
                }
            } else {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    put_str(buf, k);
                    put_json(buf, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(h: &RowHash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn column_order_does_not_matter() {
        let a = Row::new().with("a", 1i64).with("b", "x");
        let b = Row::new().with("b", "x").with("a", 1i64);
        assert_eq!(row_hash(&a), row_hash(&b));
    }

    #[test]
    fn json_key_order_does_not_matter() {
        let a: serde_json::Value = serde_json::from_str(r#"{"x":1,"y":[true,null]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"y":[true,null],"x":1}"#).unwrap();
        assert_eq!(
            row_hash(&Row::new().with("j", a)),
            row_hash(&Row::new().with("j", b))
        );
    }

    #[test]
    fn types_are_distinguished() {
        let text = Row::new().with("a", "1");
        let int = Row::new().with("a", 1i64);
        let float = Row::new().with("a", 1.0f64);
        let null = Row::new().with("a", Value::Null);
        let absent = Row::new();
        let hashes = [&text, &int, &float, &null, &absent].map(row_hash);
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn boundaries_between_columns_are_unambiguous() {
        let a = Row::new().with("ab", "c");
        let b = Row::new().with("a", "bc");
        assert_ne!(row_hash(&a), row_hash(&b));
    }

    #[test]
    fn negative_zero_and_nan_are_canonical() {
        assert_eq!(
            row_hash(&Row::new().with("f", 0.0f64)),
            row_hash(&Row::new().with("f", -0.0f64))
        );
        assert_eq!(
            row_hash(&Row::new().with("f", f64::NAN)),
            row_hash(&Row::new().with("f", -f64::NAN))
        );
    }

    /// These values are the contract with every database already written: if this test fails,
    /// the encoding changed and every stored row would look changed. Do not update the expected
    /// values; add a new encoding version instead.
    #[test]
    fn pinned_hashes() {
        let empty = Row::new();
        let node = Row::new()
            .with("node_id", "p1")
            .with("node_type", "person")
            .with(
                "attributes",
                json!({"name": "Ann", "age": 41, "tags": ["a", "b"], "score": 0.5}),
            );
        let typed = Row::new()
            .with("b", true)
            .with("i", -7i64)
            .with("f", 2.5f64)
            .with("n", Value::Null)
            .with("v", Value::Vector(vec![0.25, -1.0]));
        assert_eq!(
            hex(&row_hash(&empty)),
            "e49ab964c8fbe70ba660696339a6fd8103f0517927b2d64257cd5059153f9e42"
        );
        assert_eq!(
            hex(&row_hash(&node)),
            "f171f475ea949e552f272a5558e083401f7da9860ec9389d7454eb1405bdef19"
        );
        assert_eq!(
            hex(&row_hash(&typed)),
            "f915bccbb482faf976dd51285280b23eca8a364f7efd1bfc93bf96c9550b7d26"
        );
    }
}
