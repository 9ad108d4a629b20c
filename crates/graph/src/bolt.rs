//! JSON values (node and edge attributes) as Bolt values for query parameters.

use neo4rs::{
    BoltBoolean, BoltFloat, BoltInteger, BoltList, BoltMap, BoltNull, BoltString, BoltType,
};
use serde_json::Value as J;

pub fn from_json(value: &J) -> BoltType {
    match value {
        J::Null => BoltType::Null(BoltNull),
        J::Bool(b) => BoltType::Boolean(BoltBoolean::new(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => BoltType::Integer(BoltInteger::new(i)),
            None => BoltType::Float(BoltFloat::new(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => BoltType::String(BoltString::from(s.as_str())),
        J::Array(items) => {
            let mut list = BoltList::with_capacity(items.len());
            for i in items {
                list.push(from_json(i));
            }
            BoltType::List(list)
        }
        J::Object(map) => {
            let mut m = BoltMap::with_capacity(map.len());
            for (k, v) in map {
                m.put(BoltString::from(k.as_str()), from_json(v));
            }
            BoltType::Map(m)
        }
    }
}

/// A map from (key, value) pairs.
pub fn map<'a>(entries: impl IntoIterator<Item = (&'a str, BoltType)>) -> BoltType {
    let mut m = BoltMap::new();
    for (k, v) in entries {
        m.put(BoltString::from(k), v);
    }
    BoltType::Map(m)
}

pub fn string(s: &str) -> BoltType {
    BoltType::String(BoltString::from(s))
}

pub fn list(items: Vec<BoltType>) -> BoltType {
    let mut l = BoltList::with_capacity(items.len());
    for i in items {
        l.push(i);
    }
    BoltType::List(l)
}
