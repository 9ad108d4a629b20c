//! A step's own settings (`[steps.NAME.settings]`), read by the step's factory.
//!
//! Reading a setting marks it as known, so that [`Settings::finish`] can report every key the
//! step did not ask for (a misspelt setting is an error, not silently ignored). Values go through
//! `${VAR}` interpolation. Settings read with [`Settings::string`] and friends are part of the
//! step's identity (its fingerprint: change them and every key is reprocessed); settings read with
//! the `runtime_` getters or [`Settings::secret`] are not (a new URL or API key does not make old
//! results stale). Secret values are never part of an error message or the fingerprint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::env::interpolate;
use super::ConfigError;

/// Looks up environment variables (a closure, so that tests can supply their own).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct Settings {
    place: String,
    table: toml::Table,
    lookup: EnvLookup,
    read: BTreeSet<String>,
    identity: BTreeMap<String, String>,
    errors: Vec<ConfigError>,
    missing_env: Vec<ConfigError>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

/// What reading the settings produced, besides the step.
#[derive(Debug, Default)]
pub struct SettingsReport {
    /// Structural problems: wrong types, unknown keys, bad values.
    pub errors: Vec<ConfigError>,
    /// Variables referenced and not set: fatal only for the steps a command will run.
    pub missing_env: Vec<ConfigError>,
    /// The settings that make up the step's identity, as text.
    pub identity: BTreeMap<String, String>,
}

enum Kind {
    Identity,
    Runtime,
    Secret,
}

impl Settings {
    pub fn new(place: impl Into<String>, table: toml::Table, lookup: EnvLookup) -> Self {
        Settings {
            place: place.into(),
            table,
            lookup,
            read: BTreeSet::new(),
            identity: BTreeMap::new(),
            errors: Vec::new(),
            missing_env: Vec::new(),
        }
    }

    /// Where these settings are, for messages (`steps.NAME.settings`).
    pub fn place(&self) -> &str {
        &self.place
    }

    fn place_of(&self, key: &str) -> String {
        format!("{}.{}", self.place, key)
    }

    /// Reports a problem with the step's own keys (`steps.NAME.outputs`), found while building it.
    pub fn step_error(&mut self, key: &str, message: impl Into<String>) {
        let step_place = self.place.strip_suffix(".settings").unwrap_or(&self.place);
        let place = format!("{step_place}.{key}");
        self.errors.push(ConfigError::new(place, message));
    }

    /// Reports a problem with a setting the step has read.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let place = self.place_of(key);
        self.errors.push(ConfigError::new(place, message));
    }

    fn raw(&mut self, key: &str, kind: Kind) -> Option<String> {
        self.read.insert(key.to_string());
        let value = self.table.get(key)?.clone();
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                self.error(
                    key,
                    format!("expected a string or a number, found {}", other.type_str()),
                );
                return None;
            }
        };
        let lookup = self.lookup.clone();
        match interpolate(&text, &*lookup) {
            Ok(i) => {
                for var in &i.missing {
                    let place = self.place_of(key);
                    self.missing_env.push(ConfigError::new(
                        place,
                        format!("environment variable {var} is not set"),
                    ));
                }
                if !i.missing.is_empty() {
                    return None;
                }
                if matches!(kind, Kind::Identity) {
                    self.identity.insert(key.to_string(), i.value.clone());
                }
                Some(i.value)
            }
            Err(message) => {
                self.error(key, message);
                None
            }
        }
    }

    /// A required setting that is part of the step's identity.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let v = self.raw(key, Kind::Identity);
        if v.is_none() && !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        v
    }

    /// An optional setting that is part of the step's identity.
    pub fn string_or(&mut self, key: &str, default: &str) -> String {
        let v = self.raw(key, Kind::Identity).filter(|s| !s.is_empty());
        let v = v.unwrap_or_else(|| default.to_string());
        self.identity.insert(key.to_string(), v.clone());
        v
    }

    /// A required setting that does not change results (an address, a timeout).
    pub fn runtime_string(&mut self, key: &str) -> Option<String> {
        let v = self.raw(key, Kind::Runtime);
        if v.is_none() && !self.table.contains_key(key) {
            self.error(key, "is required");
        }
        v
    }

    /// An optional setting that does not change results.
    pub fn runtime_string_or(&mut self, key: &str, default: &str) -> String {
        self.raw(key, Kind::Runtime)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| default.to_string())
    }

    /// A secret (an API key): never part of the fingerprint or of any message. Optional: an
    /// empty or absent secret gives `None`, and the step decides whether it needs one.
    pub fn secret(&mut self, key: &str) -> Option<String> {
        self.raw(key, Kind::Secret).filter(|s| !s.is_empty())
    }

    fn parsed<T: std::str::FromStr>(&mut self, key: &str, kind: Kind, what: &str) -> Option<T> {
        let text = self.raw(key, kind)?;
        match text.trim().parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(key, format!("expected {what}, found `{text}`"));
                None
            }
        }
    }

    /// An unsigned integer that is part of the identity, with a default.
    pub fn u64_or(&mut self, key: &str, default: u64) -> u64 {
        let v = self
            .parsed(key, Kind::Identity, "a non-negative integer")
            .unwrap_or(default);
        self.identity.insert(key.to_string(), v.to_string());
        v
    }

    /// An unsigned integer that does not change results, with a default.
    pub fn runtime_u64_or(&mut self, key: &str, default: u64) -> u64 {
        self.parsed(key, Kind::Runtime, "a non-negative integer")
            .unwrap_or(default)
    }

    /// A number that does not change results, with a default.
    pub fn runtime_f64_or(&mut self, key: &str, default: f64) -> f64 {
        self.parsed(key, Kind::Runtime, "a number")
            .unwrap_or(default)
    }

    /// A boolean that is part of the identity, with a default.
    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        let v = self
            .parsed(key, Kind::Identity, "true or false")
            .unwrap_or(default);
        self.identity.insert(key.to_string(), v.to_string());
        v
    }

    /// Ends reading: every key present that the step never asked for is an error.
    pub fn finish(mut self) -> SettingsReport {
        let unknown: Vec<String> = self
            .table
            .keys()
            .filter(|k| !self.read.contains(*k))
            .cloned()
            .collect();
        for key in unknown {
            let known: Vec<_> = self.read.iter().map(String::as_str).collect();
            self.error(
                &key,
                format!("unknown setting (this step knows: {})", known.join(", ")),
            );
        }
        SettingsReport {
            errors: self.errors,
            missing_env: self.missing_env,
            identity: self.identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        let table: toml::Table = toml::from_str(text).unwrap();
        Settings::new(
            "steps.s.settings",
            table,
            Arc::new(|name| (name == "KEY").then(|| "k-123".to_string())),
        )
    }

    #[test]
    fn unknown_and_missing_and_bad_values_are_all_reported() {
        let mut s =
            settings("url = 'x'\nsize = 'big'\ntypo = 1\nkey = '${KEY}'\nother = '${NOT_SET}'");
        assert_eq!(s.runtime_string("url").as_deref(), Some("x"));
        assert_eq!(s.u64_or("size", 5), 5);
        assert_eq!(s.secret("key").as_deref(), Some("k-123"));
        assert_eq!(s.secret("other"), None);
        assert_eq!(s.string("required"), None);
        let report = s.finish();
        let places: Vec<_> = report.errors.iter().map(|e| e.place.as_str()).collect();
        assert_eq!(
            places,
            vec![
                "steps.s.settings.size",
                "steps.s.settings.required",
                "steps.s.settings.typo"
            ]
        );
        assert_eq!(report.missing_env.len(), 1);
        assert!(report.missing_env[0].message.contains("NOT_SET"));
        // Secrets never enter the identity.
        assert!(!report.identity.values().any(|v| v.contains("k-123")));
    }
}
