//! Secrets in the plan (DESIGN.md §10): for each `secrets:` entry, the route
//! the egress proxy serves inside the sandbox (`http://127.0.0.1:3128/NAME`),
//! the upstream it forwards to, the header that carries the credential,
//! the variables the agent gets and where confine reads the value at launch.
//! Plain data, and never a value: the value is read by the launcher
//! (`crate::sandbox::secrets`) and lives only outside the sandbox.
//!
//! The provider presets are here, as data, once.

use serde::Serialize;

use crate::plan::egress::OnExhausted;
use crate::profile::secrets::{
    Cost, EnvName, HeaderTemplate, ModelPrice, Provider, RawSecret, SecretSource, Upstream,
};
use crate::profile::Profile;

/// Where the egress proxy listens inside the sandbox; routes are paths
/// beneath it, served in plain HTTP on the sandbox's own loopback (the
/// agent's side never leaves it; the proxy's side is TLS).
pub const ROUTE_BASE: &str = "http://127.0.0.1:3128";

/// A provider's preset: what its SDKs and CLIs read and send.
#[derive(Debug)]
pub struct Preset {
    pub provider: Provider,
    pub host: &'static str,
    /// Path prefix of the API on `host` ("" or "/v1").
    pub path: &'static str,
    pub header: &'static str,
    pub base_url_env: &'static [&'static str],
    pub key_env: &'static [&'static str],
    /// The placeholder's prefix and its whole length: the shape of a real
    /// key, so SDKs that check the format accept it.
    pub placeholder_prefix: &'static str,
    pub placeholder_len: usize,
}

/// The presets. Endpoints, headers and variables as the providers' SDKs
/// and CLIs use them (survey: research/agent-sandboxes-2026.md §2, from
/// nono's route table and the gh-aw-firewall API proxy's environment
/// tables).
pub const PRESETS: &[Preset] = &[
    // Claude Code and the Anthropic SDKs: `x-api-key` with an API key
    // (`ANTHROPIC_AUTH_TOKEN` is the Bearer form, for gateways; write
    // `header:` and `key_env:` for it). Keys are `sk-ant-api03-` + 95, 108
    // characters in all.
    Preset {
        provider: Provider::Anthropic,
        host: "api.anthropic.com",
        path: "",
        header: "x-api-key: {secret}",
        base_url_env: &["ANTHROPIC_BASE_URL"],
        key_env: &["ANTHROPIC_API_KEY"],
        placeholder_prefix: "sk-ant-api03-",
        placeholder_len: 108,
    },
    // The OpenAI SDKs and Codex: the base URL includes `/v1`, so the
    // upstream carries it and the route is the API's root. Codex reads
    // `CODEX_API_KEY` too. Project keys are `sk-proj-` + 156.
    Preset {
        provider: Provider::Openai,
        host: "api.openai.com",
        path: "/v1",
        header: "Authorization: Bearer {secret}",
        base_url_env: &["OPENAI_BASE_URL"],
        key_env: &["OPENAI_API_KEY", "CODEX_API_KEY"],
        placeholder_prefix: "sk-proj-",
        placeholder_len: 164,
    },
    // Gemini CLI reads `GOOGLE_GEMINI_BASE_URL`, the Gen AI SDK
    // `GEMINI_API_BASE_URL`; both read `GEMINI_API_KEY` (only that one: the
    // SDK warns when `GOOGLE_API_KEY` is set as well). Keys are `AIza` + 35.
    // Gemini CLI 0.44 and later also needs its auth type pinned to the API
    // key in settings, or it treats a base URL as a gateway.
    Preset {
        provider: Provider::Gemini,
        host: "generativelanguage.googleapis.com",
        path: "",
        header: "x-goog-api-key: {secret}",
        base_url_env: &["GOOGLE_GEMINI_BASE_URL", "GEMINI_API_BASE_URL"],
        key_env: &["GEMINI_API_KEY"],
        placeholder_prefix: "AIza",
        placeholder_len: 39,
    },
    // The REST API. `gh` and git read no base-URL variable (`GH_HOST`
    // makes `gh` use https to that host), so they reach the route only
    // through the MITM the survey leaves for later; `GITHUB_API_URL` is
    // what Actions toolkits and Octokit-based tools read. `gh` reads
    // `GH_TOKEN` first, most other tools `GITHUB_TOKEN`. Classic tokens are
    // `ghp_` + 36.
    Preset {
        provider: Provider::Github,
        host: "api.github.com",
        path: "",
        header: "Authorization: Bearer {secret}",
        base_url_env: &["GITHUB_API_URL"],
        key_env: &["GH_TOKEN", "GITHUB_TOKEN"],
        placeholder_prefix: "ghp_",
        placeholder_len: 40,
    },
];

/// The preset of `provider`.
pub fn preset(provider: Provider) -> &'static Preset {
    PRESETS
        .iter()
        .find(|p| p.provider == provider)
        .expect("every provider has a preset")
}

/// What the placeholder says after a preset's prefix, padded to the
/// length with `0`: recognisable in any log as confine's, never a key.
const PLACEHOLDER_MARK: &str = "confine-placeholder-";

/// The placeholder the agent holds for `name`: the preset's shape, or
/// `confine-placeholder-NAME` for an explicit upstream.
fn placeholder(name: &str, preset: Option<&Preset>) -> String {
    match preset {
        Some(p) => {
            let mut s = format!("{}{PLACEHOLDER_MARK}", p.placeholder_prefix);
            while s.len() < p.placeholder_len {
                s.push('0');
            }
            s.truncate(p.placeholder_len);
            s
        }
        None => format!("{PLACEHOLDER_MARK}{name}"),
    }
}

/// An entry with its preset applied: what the profile writes wins over the
/// preset (`header`, `base_url_env`, `key_env`).
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub upstream: Upstream,
    pub header: HeaderTemplate,
    pub base_url_env: Vec<String>,
    pub key_env: Vec<String>,
    pub placeholder: String,
}

/// Applies the preset of `s`, if it names one. The profile's checks make
/// sure an entry has a provider or an upstream with a header; one without
/// either resolves to nothing the proxy could use (an empty host).
pub(crate) fn resolve(s: &RawSecret) -> Resolved {
    let p = s.provider.map(preset);
    let upstream = match (&s.upstream, p) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => Upstream {
            host: p.host.into(),
            port: 443,
            path: p.path.into(),
        },
        (None, None) => Upstream {
            host: String::new(),
            port: 443,
            path: String::new(),
        },
    };
    let header = match (&s.header, p) {
        (Some(h), _) => h.clone(),
        (None, Some(p)) => p.header.parse().expect("presets' headers parse"),
        (None, None) => HeaderTemplate {
            name: String::new(),
            prefix: String::new(),
            suffix: String::new(),
        },
    };
    let vars = |written: &Option<EnvName>, preset: Option<&'static [&'static str]>| match written {
        Some(e) => vec![e.0.clone()],
        None => preset
            .unwrap_or_default()
            .iter()
            .map(|v| v.to_string())
            .collect(),
    };
    Resolved {
        upstream,
        header,
        base_url_env: vars(&s.base_url_env, p.map(|p| p.base_url_env)),
        key_env: vars(&s.key_env, p.map(|p| p.key_env)),
        placeholder: placeholder(&s.name.0, p),
    }
}

/// One secret's route.
#[derive(Clone, Debug, Serialize)]
pub struct Route {
    /// The secret's name, also the route's path (`/NAME`).
    pub name: String,
    /// Where confine reads the value at launch: kind and name or path.
    pub source: SecretSource,
    pub provider: Option<Provider>,
    /// What the agent's base-URL variables hold: `http://127.0.0.1:3128/NAME`.
    pub route: String,
    /// Where the proxy forwards the route, over verified TLS. Reachable
    /// through this route only: it isn't added to `network.allow`.
    pub upstream: String,
    pub upstream_host: String,
    pub upstream_port: u16,
    /// Prepended to the path after `/NAME`.
    pub upstream_path: String,
    /// The header the proxy sets, `{secret}` standing for the value.
    pub header: HeaderTemplate,
    pub base_url_env: Vec<String>,
    pub key_env: Vec<String>,
    /// What the agent holds in `key_env`: the shape of a key, not one.
    pub placeholder: String,
    pub limits: Option<RouteLimits>,
}

/// A route's spending limits (DESIGN.md §10): checked and planned here,
/// counted by the proxy.
#[derive(Clone, Debug, Serialize)]
pub struct RouteLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens: Option<u64>,
    pub tokens_per_hour: Option<u64>,
    pub cost: Option<Cost>,
    /// Model name to prices per million tokens.
    pub prices: std::collections::BTreeMap<String, ModelPrice>,
    pub on_exhausted: OnExhausted,
}

/// The routes of `p`'s secrets, in profile order.
pub(super) fn plan(p: &Profile) -> Vec<Route> {
    p.secrets
        .iter()
        .map(|s| {
            let s = &s.value;
            let r = resolve(s);
            Route {
                name: s.name.0.clone(),
                source: s.from.clone(),
                provider: s.provider,
                route: format!("{ROUTE_BASE}/{}", s.name.0),
                upstream: r.upstream.to_string(),
                upstream_host: r.upstream.host.clone(),
                upstream_port: r.upstream.port,
                upstream_path: r.upstream.path.clone(),
                header: r.header,
                base_url_env: r.base_url_env,
                key_env: r.key_env,
                placeholder: r.placeholder,
                limits: s.limits.as_ref().map(|l| RouteLimits {
                    requests_per_minute: l.requests_per_minute.map(|c| c.0),
                    tokens: l.tokens.map(|c| c.0),
                    tokens_per_hour: l.tokens_per_hour.map(|c| c.0),
                    cost: l.cost,
                    prices: l.prices.clone().map(|p| p.0).unwrap_or_default(),
                    on_exhausted: l.on_exhausted.unwrap_or_default(),
                }),
            }
        })
        .collect()
}

/// The variables the agent gets for `routes`: each base-URL variable the
/// route, each key variable the placeholder.
pub(super) fn env_vars(routes: &[Route]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for r in routes {
        for e in &r.base_url_env {
            v.push((e.clone(), r.route.clone()));
        }
        for e in &r.key_env {
            v.push((e.clone(), r.placeholder.clone()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_well_formed() {
        for p in PRESETS {
            let h: HeaderTemplate = p.header.parse().expect(p.header);
            assert!(!h.name.is_empty());
            let u: Upstream = format!("https://{}{}", p.host, p.path).parse().unwrap();
            assert_eq!(u.host, p.host);
            let ph = placeholder("x", Some(p));
            assert_eq!(ph.len(), p.placeholder_len, "{ph}");
            assert!(ph.starts_with(p.placeholder_prefix), "{ph}");
            assert!(ph.contains("confine-placeholder"), "{ph}");
            for v in p.base_url_env.iter().chain(p.key_env) {
                v.parse::<EnvName>().unwrap();
            }
        }
        // Every provider has exactly one preset.
        for pr in [
            Provider::Anthropic,
            Provider::Openai,
            Provider::Gemini,
            Provider::Github,
        ] {
            assert_eq!(PRESETS.iter().filter(|p| p.provider == pr).count(), 1);
        }
        assert_eq!(
            placeholder("anthropic", Some(preset(Provider::Anthropic))),
            format!("sk-ant-api03-confine-placeholder-{}", "0".repeat(75))
        );
    }

    fn raw(yaml: &str) -> RawSecret {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn written_values_win_over_the_preset() {
        let r = resolve(&raw("{name: a, from: 'env:K', provider: anthropic}"));
        assert_eq!(r.upstream.to_string(), "https://api.anthropic.com");
        assert_eq!(r.header.to_string(), "x-api-key: {secret}");
        assert_eq!(r.base_url_env, ["ANTHROPIC_BASE_URL"]);
        assert_eq!(r.key_env, ["ANTHROPIC_API_KEY"]);
        let r = resolve(&raw(
            "{name: a, from: 'env:K', provider: anthropic, header: 'Authorization: Bearer {secret}', key_env: ANTHROPIC_AUTH_TOKEN}",
        ));
        assert_eq!(r.header.to_string(), "authorization: Bearer {secret}");
        assert_eq!(r.key_env, ["ANTHROPIC_AUTH_TOKEN"]);
        assert_eq!(r.base_url_env, ["ANTHROPIC_BASE_URL"]);
        let r = resolve(&raw(
            "{name: llm, from: 'env:K', upstream: 'https://llm.example.com:8443/api/', header: 'x-key: {secret}', base_url_env: LLM_URL}",
        ));
        assert_eq!(r.upstream.to_string(), "https://llm.example.com:8443/api");
        assert_eq!(r.placeholder, "confine-placeholder-llm");
        assert!(r.key_env.is_empty());
        let r = resolve(&raw("{name: o, from: 'env:K', provider: openai}"));
        assert_eq!(r.upstream.to_string(), "https://api.openai.com/v1");
    }
}
