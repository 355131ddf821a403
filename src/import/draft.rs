//! The policy being written: its sections, each with the YAML keys it came from, and the text
//! they make.

/// One table of the policy.
#[derive(Debug, Default)]
struct Section {
    name: String,
    /// Key, TOML value, and the YAML setting it came from.
    entries: Vec<(String, String, String)>,
    from: Vec<String>,
}

/// An environment variable the operator must set for the imported policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: String,
    /// What it must hold, in words.
    pub what: String,
}

/// A `[[test]]` case.
#[derive(Debug, Clone)]
pub(crate) struct TestCase {
    name: String,
    method: String,
    path: String,
    identity: Option<String>,
    origin: Option<String>,
    expect: String,
    status: u16,
}

impl TestCase {
    pub(crate) fn new(
        name: &str,
        method: &str,
        path: &str,
        identity: Option<&str>,
        origin: Option<String>,
        expect: &str,
        status: u16,
    ) -> Self {
        Self {
            name: name.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            identity: identity.map(str::to_string),
            origin,
            expect: expect.to_string(),
            status,
        }
    }
}

/// `[[agent_config]]`: service, environment, agent name, settings (key, TOML value).
pub(crate) type AgentConfig = (
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

/// The policy's sections as the import fills them.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    sections: Vec<Section>,
    pub(crate) agent_configs: Vec<AgentConfig>,
    pub(crate) tests: Vec<TestCase>,
}

/// The order sections are written in.
const ORDER: &[&str] = &[
    "gateway",
    "listener",
    "listener.limits",
    "tls.apm-server",
    "auth.secret_token.apm-server",
    "auth.elasticsearch_api_keys",
    "auth.anonymous",
    "auth.anonymous.rate_limit",
    "rum",
    "rum.source_mapping",
    "output.elasticsearch",
    "output.elasticsearch.tls",
    "output.file",
    "agent_config_source",
    "aggregation",
];

/// A TOML string literal.
pub(crate) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Draft {
    fn section(&mut self, name: &str) -> &mut Section {
        if let Some(i) = self.sections.iter().position(|s| s.name == name) {
            return &mut self.sections[i];
        }
        self.sections.push(Section {
            name: name.to_string(),
            ..Section::default()
        });
        let last = self.sections.len() - 1;
        &mut self.sections[last]
    }

    /// Sets `key` (replacing an earlier value: the last one written wins, as in APM Server).
    pub(crate) fn set(&mut self, section: &str, key: &str, value: String, from: &str) {
        let s = self.section(section);
        match s.entries.iter_mut().find(|(k, _, _)| k == key) {
            Some(entry) => {
                entry.1 = value;
                entry.2 = from.to_string();
            }
            None => s.entries.push((key.to_string(), value, from.to_string())),
        }
        if !s.from.iter().any(|f| f == from) {
            s.from.push(from.to_string());
        }
    }

    /// Names one more YAML key a section came from.
    pub(crate) fn note_from(&mut self, section: &str, from: &str) {
        let s = self.section(section);
        if !s.from.iter().any(|f| f == from) {
            s.from.push(from.to_string());
        }
    }

    /// Moves `key` to the top of its section.
    pub(crate) fn front(&mut self, section: &str, key: &str) {
        let s = self.section(section);
        if let Some(i) = s.entries.iter().position(|(k, _, _)| k == key) {
            let entry = s.entries.remove(i);
            s.entries.insert(0, entry);
        }
    }

    /// Whether a section holds `key`.
    pub(crate) fn has(&self, section: &str, key: &str) -> bool {
        self.sections
            .iter()
            .any(|s| s.name == section && s.entries.iter().any(|(k, _, _)| k == key))
    }

    /// Drops `key` from a section; whether it was there.
    pub(crate) fn remove_key(&mut self, section: &str, key: &str) -> bool {
        let s = self.section(section);
        let before = s.entries.len();
        s.entries.retain(|(k, _, _)| k != key);
        s.entries.len() != before
    }

    /// Drops a section.
    pub(crate) fn remove(&mut self, section: &str) {
        self.sections.retain(|s| s.name != section);
    }

    /// The policy text, and where each entry came from.
    pub(crate) fn render(&self, input: &str, lost: usize, env: &[EnvVar]) -> (String, Origins) {
        let mut out = String::new();
        let mut origins = Origins::new();
        out.push_str(&format!(
            "# Imported from {input} by `apmgate import` (apmgate {}).\n",
            env!("CARGO_PKG_VERSION")
        ));
        out.push_str(
            "# Each section names the APM Server settings it came from. Check it with\n\
             # `apmgate validate` and `apmgate test` (the [[test]] cases at the end pin the access\n\
             # decisions apm-server.yml implied).\n",
        );
        if lost > 0 {
            out.push_str(&format!(
                "# {lost} setting{} could not be carried over: `apmgate import` lists {} (codes I1xx).\n",
                if lost == 1 { "" } else { "s" },
                if lost == 1 { "it" } else { "them" }
            ));
        }
        if !env.is_empty() {
            out.push_str("#\n# Set these environment variables where apmgate runs:\n");
            for v in env {
                out.push_str(&format!("#   {}: {}\n", v.name, v.what));
            }
        }
        out.push_str(
            "#\n# Relative paths are resolved from this file's directory. Without an output section,\n\
             # events go to data/apmgate-events.ndjson.\n",
        );

        let mut names: Vec<&str> = ORDER.to_vec();
        for s in &self.sections {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
        for name in names {
            let section = self.sections.iter().find(|s| s.name == name);
            match name {
                "gateway" => {
                    out.push('\n');
                    if let Some(s) = section {
                        from_line(&mut out, &s.from);
                    }
                    out.push_str(
                        "# APM Server believes X-Forwarded-For, X-Real-IP and Forwarded from any client;\n\
                         # apmgate only from trusted proxies. Behind a load balancer, name it here:\n\
                         # trusted_proxies = [\"10.0.0.0/24\"]\n\
                         # trusted_proxy_header = \"x-forwarded-for\"\n",
                    );
                    out.push_str("[gateway]\n");
                    if let Some(s) = section {
                        entries(&mut out, &s.entries, &mut origins);
                    }
                }
                "listener" => {
                    out.push('\n');
                    let mut from = vec!["apm-server.host".to_string()];
                    if let Some(s) = section {
                        for f in &s.from {
                            if !from.contains(f) {
                                from.push(f.clone());
                            }
                        }
                    }
                    from_line(&mut out, &from);
                    out.push_str(
                        "# One listener serves every APM route, as APM Server does.\n[[listener]]\nname = \"apm-server\"\n",
                    );
                    let entries_of = section.map(|s| s.entries.clone()).unwrap_or_default();
                    if !entries_of.iter().any(|(k, _, _)| k == "bind") {
                        out.push_str("bind = \"127.0.0.1:8200\"  # APM Server's default\n");
                    }
                    entries(&mut out, &entries_of, &mut origins);
                }
                _ => {
                    let Some(s) = section else { continue };
                    if s.entries.is_empty() {
                        continue;
                    }
                    out.push('\n');
                    from_line(&mut out, &s.from);
                    out.push_str(&format!("[{}]\n", s.name));
                    entries(&mut out, &s.entries, &mut origins);
                }
            }
        }

        for (service, environment, agent, settings) in &self.agent_configs {
            out.push_str("\n# From apm-server.yml: apm-server.agent_config\n[[agent_config]]\n");
            out.push_str(&format!("service = {}\n", toml_str(service)));
            if let Some(e) = environment {
                out.push_str(&format!("environment = {}\n", toml_str(e)));
            }
            if let Some(a) = agent {
                out.push_str(&format!("agent_name = {}\n", toml_str(a)));
            }
            let items: Vec<String> = settings
                .iter()
                .map(|(k, v)| format!("{} = {v}", toml_key(k)))
                .collect();
            out.push_str(&format!("settings = {{ {} }}\n", items.join(", ")));
        }

        if !self.tests.is_empty() {
            out.push_str(
                "\n# The access decisions apm-server.yml implied, checked by `apmgate test`.\n",
            );
        }
        for t in &self.tests {
            out.push_str("\n[[test]]\n");
            out.push_str(&format!("name = {}\n", toml_str(&t.name)));
            out.push_str("listener = \"apm-server\"\n");
            if t.method != "POST" {
                out.push_str(&format!("method = {}\n", toml_str(&t.method)));
            }
            out.push_str(&format!("path = {}\n", toml_str(&t.path)));
            out.push_str("from = \"192.0.2.10\"\n");
            if let Some(o) = &t.origin {
                out.push_str(&format!("headers = {{ \"Origin\" = {} }}\n", toml_str(o)));
            }
            if let Some(i) = &t.identity {
                out.push_str(&format!("identity = {}\n", toml_str(i)));
            }
            out.push_str(&format!("expect = {}\n", toml_str(&t.expect)));
            out.push_str(&format!("status = {}\n", t.status));
        }
        (out, origins)
    }
}

/// A TOML array of strings.
pub(crate) fn toml_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML inline table of strings.
pub(crate) fn inline_table(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return "{}".to_string();
    }
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml_str(k)
    }
}

fn from_line(out: &mut String, from: &[String]) {
    if from.is_empty() {
        return;
    }
    let mut line = String::from("# From apm-server.yml:");
    let mut width = line.len();
    for (i, f) in from.iter().enumerate() {
        let item = if i + 1 < from.len() {
            format!(" {f},")
        } else {
            format!(" {f}")
        };
        if width + item.len() > 98 {
            line.push_str("\n#  ");
            width = 3;
        }
        width += item.len();
        line.push_str(&item);
    }
    out.push_str(&line);
    out.push('\n');
}

/// Where each written entry is in the policy text, and the YAML setting it came from.
pub(crate) type Origins = Vec<(std::ops::Range<usize>, String)>;

fn entries(out: &mut String, entries: &[(String, String, String)], origins: &mut Origins) {
    for (k, v, from) in entries {
        let start = out.len();
        out.push_str(&format!("{} = {v}\n", toml_key(k)));
        origins.push((start..out.len(), from.clone()));
    }
}
