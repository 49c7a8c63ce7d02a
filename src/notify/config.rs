//! The `alerting:` section of prometheus.yml: Alertmanagers to deliver to.
//!
//! Owns: decoding `alerting.alertmanagers` (static_configs, api_version, path_prefix, scheme,
//! timeout, basic_auth, tls_config) into [`AlertingConfig`] with positioned errors.
//! `alert_relabel_configs` use the shared [`crate::relabel`] module.
//! Must not touch: sockets. What is not supported is refused at load time with a reason,
//! never silently ignored: per-Alertmanager `relabel_configs` (target discovery is static
//! here), service discovery other than `static_configs`, and `scheme: https` while the build has
//! no outbound TLS ([`super::sender::HTTPS_SUPPORTED`]). `tls_config` is decoded and checked
//! (files readable) already, so TLS only has to be plugged into the sender.

use super::sender::HTTPS_SUPPORTED;
use crate::config::yaml::{Node, Value};
use crate::config::{ConfigError, Decoder};
use std::time::Duration;

/// `alerting:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertingConfig {
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// Applied to every alert after the external labels are added, as in Prometheus.
    pub alert_relabel_configs: Vec<crate::relabel::RelabelConfig>,
}

/// One entry of `alerting.alertmanagers`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
    /// "http" (or "https" with the `tls` feature).
    pub scheme: String,
    /// Prepended to `/api/v2/alerts`; no trailing slash.
    pub path_prefix: String,
    /// Whole-request timeout. Prometheus's default: 10s.
    pub timeout: Duration,
    pub basic_auth: Option<BasicAuth>,
    /// `tls_config`, for `scheme: https`.
    pub tls: Option<TlsConfig>,
    /// `host:port` of every static target, in file order.
    pub targets: Vec<String>,
}

/// `tls_config` as Prometheus spells it (the file-based subset). Paths are as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsConfig {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            scheme: "http".into(),
            path_prefix: String::new(),
            timeout: Duration::from_secs(10),
            basic_auth: None,
            tls: None,
            targets: Vec::new(),
        }
    }
}

impl AlertmanagerConfig {
    /// The alerts endpoint of each target.
    pub fn urls(&self) -> impl Iterator<Item = String> + '_ {
        self.targets
            .iter()
            .map(|t| format!("{}://{t}{}/api/v2/alerts", self.scheme, self.path_prefix))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

const ALERTING_KEYS: &[&str] = &["alertmanagers", "alert_relabel_configs"];
const AM_KEYS: &[&str] = &[
    "static_configs",
    "api_version",
    "path_prefix",
    "scheme",
    "timeout",
    "basic_auth",
    "tls_config",
    "relabel_configs",
];
const TLS_KEYS: &[&str] = &[
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
    "insecure_skip_verify",
];

/// Decodes `alerting:`.
pub(crate) fn decode_alerting(d: &Decoder<'_>, node: &Node) -> Result<AlertingConfig, ConfigError> {
    let mut out = AlertingConfig::default();
    for (k, v) in d.entries(node, ALERTING_KEYS, "alerting")? {
        match d.key(k) {
            "alertmanagers" => {
                for am in seq(d, v, "alerting.alertmanagers")? {
                    out.alertmanagers.push(decode_alertmanager(d, am)?);
                }
            }
            _ => {
                out.alert_relabel_configs =
                    crate::relabel::decode_list(d, v, "alert_relabel_configs")?
            }
        }
    }
    Ok(out)
}

fn decode_alertmanager(d: &Decoder<'_>, node: &Node) -> Result<AlertmanagerConfig, ConfigError> {
    let mut am = AlertmanagerConfig::default();
    let what = "an alertmanagers entry";
    for (k, v) in d.entries(node, AM_KEYS, what)? {
        match d.key(k) {
            "static_configs" => {
                for sc in seq(d, v, "static_configs")? {
                    for (sk, sv) in d.entries(sc, &["targets", "labels"], "a static_config")? {
                        if d.key(sk) == "targets" {
                            for t in seq(d, sv, "targets")? {
                                let t = d.string(t, "a target")?;
                                if !t.contains(':') || t.contains('/') {
                                    return Err(
                                        d.err(sk.pos, format!("target {t:?} must be host:port"))
                                    );
                                }
                                am.targets.push(t.to_string());
                            }
                        }
                    }
                }
            }
            "api_version" => {
                let s = d.string(v, "api_version")?;
                if s != "v2" {
                    return Err(d.err(v.pos, format!("api_version {s:?}: only v2 is supported")));
                }
            }
            "path_prefix" => {
                let s = d.string(v, "path_prefix")?.trim_end_matches('/');
                am.path_prefix = if s.is_empty() || s.starts_with('/') {
                    s.to_string()
                } else {
                    format!("/{s}")
                };
            }
            "scheme" => {
                let s = d.string(v, "scheme")?;
                match s {
                    "http" => {}
                    "https" if HTTPS_SUPPORTED => {}
                    "https" => return Err(d.err(v.pos, HTTPS_MISSING)),
                    _ => return Err(d.err(v.pos, format!("scheme {s:?}: expected http or https"))),
                }
                am.scheme = s.to_string();
            }
            "tls_config" => am.tls = Some(decode_tls(d, v)?),
            "timeout" => am.timeout = d.duration(v, "timeout")?,
            "basic_auth" => {
                let mut user = String::new();
                let mut pass = String::new();
                for (bk, bv) in
                    d.entries(v, &["username", "password", "password_file"], "basic_auth")?
                {
                    match d.key(bk) {
                        "username" => user = d.string(bv, "username")?.to_string(),
                        "password" => pass = d.string(bv, "password")?.to_string(),
                        _ => {
                            let f = d.string(bv, "password_file")?;
                            pass = std::fs::read_to_string(f)
                                .map_err(|e| d.err(bv.pos, format!("password_file {f}: {e}")))?
                                .trim_end_matches(['\r', '\n'])
                                .to_string();
                        }
                    }
                }
                am.basic_auth = Some(BasicAuth {
                    username: user,
                    password: pass,
                });
            }
            "relabel_configs" if !is_empty_seq(v) => {
                return Err(d.err(k.pos, "relabel_configs is not supported yet"))
            }
            _ => {}
        }
    }
    Ok(am)
}

/// Why `scheme: https` is refused in this build.
pub const HTTPS_MISSING: &str = "scheme https: this promlet has no outbound TLS yet \
     (it is coming behind the `tls` cargo feature); use http, or a TLS proxy on the device";

fn decode_tls(d: &Decoder<'_>, node: &Node) -> Result<TlsConfig, ConfigError> {
    let mut tls = TlsConfig::default();
    for (k, v) in d.entries(node, TLS_KEYS, "tls_config")? {
        let key = d.key(k);
        if key == "insecure_skip_verify" {
            tls.insecure_skip_verify = d.boolean(v, key)?;
            continue;
        }
        let text = d.string(v, key)?.to_string();
        if key.ends_with("_file") {
            // Checked now so a typo fails at load, not at the first alert.
            std::fs::metadata(&text).map_err(|e| d.err(v.pos, format!("{key} {text}: {e}")))?;
        }
        let slot = match key {
            "ca_file" => &mut tls.ca_file,
            "cert_file" => &mut tls.cert_file,
            "key_file" => &mut tls.key_file,
            _ => &mut tls.server_name,
        };
        *slot = Some(text);
    }
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        return Err(d.err(
            node.pos,
            "tls_config needs both cert_file and key_file, or neither",
        ));
    }
    Ok(tls)
}

fn seq<'n>(d: &Decoder<'_>, node: &'n Node, what: &str) -> Result<&'n [Node], ConfigError> {
    match &node.value {
        Value::Seq(items) => Ok(items),
        _ if node.is_null() => Ok(&[]),
        _ => Err(d.err(
            node.pos,
            format!("{what} must be a sequence, not a {}", node.kind()),
        )),
    }
}

fn is_empty_seq(node: &Node) -> bool {
    node.is_null() || matches!(&node.value, Value::Seq(v) if v.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn alertmanagers_decode_with_prefix_auth_and_timeout() {
        let c = Config::parse(
            "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:9093', 'am:80']\n    \
             api_version: v2\n    path_prefix: am/\n    timeout: 3s\n    basic_auth: {username: u, password: p}\n",
            "t.yml",
        )
        .unwrap();
        let am = &c.alerting.alertmanagers[0];
        assert_eq!(am.timeout, Duration::from_secs(3));
        assert_eq!(am.basic_auth.as_ref().unwrap().username, "u");
        let urls: Vec<String> = am.urls().collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:9093/am/api/v2/alerts",
                "http://am:80/am/api/v2/alerts"
            ]
        );
    }

    #[test]
    fn unsupported_settings_are_refused_with_position() {
        let e = |y: &str| Config::parse(y, "t.yml").unwrap_err().to_string();
        assert!(e("alerting:\n  alertmanagers:\n  - api_version: v1\n").contains("t.yml:3:18"));
        let https = e("alerting:\n  alertmanagers:\n  - scheme: https\n");
        assert!(
            https.contains("t.yml:3:13") && https.contains("no outbound TLS"),
            "{https}"
        );
        assert!(e("alerting:\n  alert_relabel_configs:\n  - action: nope\n").contains("t.yml:3"));
        assert!(
            e("alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: [x]\n")
                .contains("host:port")
        );
        assert!(e("alerting:\n  alertmanagers:\n  - tiemout: 1s\n").contains("unknown key"));
    }

    /// `tls_config` is decoded and checked whatever the scheme, so https only needs the
    /// sender's TLS; until then `scheme: https` is the one thing refused.
    #[test]
    fn tls_config_is_decoded_and_checked() {
        let dir = std::env::temp_dir().join(format!("promlet-amtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let y = |tls: &str| {
            format!(
                "alerting:\n  alertmanagers:\n  - static_configs: [{{targets: ['am:9093']}}]\n    \
                 tls_config: {tls}\n"
            )
        };
        let c = Config::parse(
            &y(&format!(
                "{{ca_file: {}, server_name: am.lan, insecure_skip_verify: true}}",
                ca.display()
            )),
            "t.yml",
        )
        .unwrap();
        let tls = c.alerting.alertmanagers[0].tls.clone().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(ca.to_str().unwrap()));
        assert_eq!(tls.server_name.as_deref(), Some("am.lan"));
        assert!(tls.insecure_skip_verify);
        let e = |t: &str| Config::parse(&y(t), "t.yml").unwrap_err().to_string();
        assert!(e("{ca_file: /nonexistent/ca.pem}").contains("ca_file /nonexistent/ca.pem"));
        assert!(e(&format!("{{cert_file: {}}}", ca.display())).contains("key_file"));
        assert!(e("{ca: inline}").contains("unknown key"));
        assert!(e("{insecure_skip_verify: maybe}").contains("insecure_skip_verify"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
