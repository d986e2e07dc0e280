//! What can be checked here of `deploy/` without Docker, Kubernetes, Helm or systemd:
//!
//! - every YAML file parses (Helm templates only once rendered: `helm`, an ignored test);
//! - every tracebridge config under `deploy/` — the image's, the compose demo's, the
//!   Kubernetes ConfigMap's and the Helm chart's default `config` — validates with
//!   `config::load_str`, and the ports the manifests declare are the ports it listens on;
//! - the Dockerfile's build stage installs cmake from apt, then builds with cargo;
//! - the Kubernetes objects and the Helm chart agree with each other and with the
//!   gateway (probes on the admin endpoints, the ConfigMap mounted as a directory);
//! - the container health check script and the systemd upgrade helper work against the
//!   real binary;
//! - the compose demo's sample services and the gateway's compose config make one trace
//!   (run on loopback with a recording collector; python3 is a prerequisite).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracebridge::config::{self, Snapshot};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn yaml_docs(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

fn yaml_one(path: &Path) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one document expected", path.display());
    docs.remove(0)
}

fn s(y: &Yaml) -> &str {
    y.as_str()
        .unwrap_or_else(|| panic!("a string expected, found {y:?}"))
}

fn int(y: &Yaml) -> i64 {
    y.as_i64()
        .unwrap_or_else(|| panic!("an integer expected, found {y:?}"))
}

fn list(y: &Yaml) -> &Vec<Yaml> {
    y.as_vec()
        .unwrap_or_else(|| panic!("a list expected, found {y:?}"))
}

fn port_of(addr: &str) -> i64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Loads a gateway config. Peer names that only exist where the config is deployed
/// (compose or cluster DNS) cannot resolve here: the text must then fail on exactly
/// those peers and nothing else, and load completely once they point at loopback
/// (same ports).
fn load_config(text: &str, what: &str) -> Snapshot {
    match config::load_str(text, None, 1) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            for p in &err.problems {
                assert!(
                    p.path.starts_with("upstreams.") && p.message.contains("cannot resolve"),
                    "{what}: {err}"
                );
            }
            let mut doc: toml::Table = text.parse().unwrap();
            for upstream in doc
                .get_mut("upstreams")
                .and_then(|u| u.as_table_mut())
                .into_iter()
                .flat_map(|t| t.iter_mut().map(|(_, v)| v))
            {
                if let Some(peers) = upstream.get_mut("peers").and_then(|p| p.as_array_mut()) {
                    for peer in peers {
                        let port = port_of(peer.as_str().unwrap());
                        *peer = toml::Value::String(format!("127.0.0.1:{port}"));
                    }
                }
            }
            config::load_str(&toml::to_string(&doc).unwrap(), None, 1)
                .unwrap_or_else(|e| panic!("{what} (peers on loopback): {e}"))
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET; the status code and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Kills a process by id, ignoring one that is already gone.
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether a process runs (a zombie waiting for a parent that does not reap it does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A child process that is killed when the test ends, passed or not.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------
// YAML and configs

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    files_under(&root().join("deploy"), &mut files);
    let mut parsed = 0;
    for f in &files {
        let is_yaml = f.extension().is_some_and(|e| e == "yaml" || e == "yml");
        // Helm templates are Go templates, YAML only once rendered.
        let template = f.components().any(|c| c.as_os_str() == "templates");
        if !is_yaml || template {
            continue;
        }
        let docs = yaml_docs(f);
        assert!(!docs.is_empty(), "{}: empty", f.display());
        for doc in &docs {
            assert!(doc.as_hash().is_some(), "{}: not a mapping", f.display());
        }
        parsed += 1;
    }
    // 5 Kubernetes manifests + kustomization, Chart.yaml, values.yaml, the collector
    // config, the compose file.
    assert!(parsed >= 10, "only {parsed} YAML files: {files:?}");
}

#[test]
fn the_image_config_listens_on_all_interfaces() {
    let snapshot = load_config(
        &read(&deploy("tracebridge.toml")),
        "deploy/tracebridge.toml",
    );
    assert_eq!(snapshot.server.listen, vec!["0.0.0.0:8080"]);
    assert_eq!(snapshot.server.admin_listen, "0.0.0.0:9901");
    // docker stop waits 10 s before SIGKILL.
    assert!(
        snapshot.server.grace_period + snapshot.server.shutdown_timeout < Duration::from_secs(10)
    );
    // The built-in default stays on loopback; the image's config is the same demo.
    let builtin = config::load_str(config::DEFAULT_CONFIG, None, 1).unwrap();
    assert_eq!(builtin.server.listen, vec!["127.0.0.1:8080"]);
    assert_eq!(snapshot.router.len(), builtin.router.len());
}

// ---------------------------------------------------------------------------------
// Dockerfile

/// Instructions of a Dockerfile: (keyword, arguments) with continuations joined and
/// comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((keyword.to_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

/// The packages of every `apt-get install` in `text` (options and redirections left out).
fn apt_packages(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for segment in text.split(['\n', ';', '&', '|']) {
        let words: Vec<&str> = segment.split_whitespace().collect();
        if let Some(i) = words
            .windows(2)
            .position(|w| w[0] == "apt-get" && w[1] == "install")
        {
            for w in &words[i + 2..] {
                if w.starts_with('-') || w.starts_with('>') || w.contains('>') {
                    continue;
                }
                out.insert(w.to_string());
            }
        }
    }
    out
}

#[test]
fn dockerfile_build_steps_mirror_ci() {
    let text = read(&deploy("Dockerfile"));
    let instructions = dockerfile_instructions(&text);
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = instructions.split_at(stages[1]);
    let build_from = &build[stages[0]].1;
    let runtime_from = &runtime[0].1;
    assert!(build_from.starts_with("rust:"), "{build_from}");
    // The binary links glibc dynamically: same Debian release in both stages.
    for from in [build_from, runtime_from] {
        assert!(from.contains("bookworm"), "{from}");
    }

    let build_runs: Vec<&str> = build
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    // The build context leaves out .cargo/, whose cmake script would otherwise fetch a
    // cmake: the image installs Debian's, as a build machine would.
    let docker_packages = apt_packages(&build_runs.join("\n"));
    assert!(docker_packages.contains("cmake"), "{docker_packages:?}");
    assert!(build_runs
        .iter()
        .any(|r| r.contains("apt-get update") && r.contains("DEBIAN_FRONTEND=noninteractive")));
    assert!(
        build_runs
            .iter()
            .any(|r| r.contains("cargo build --release")),
        "{build_runs:?}"
    );

    // Runtime stage: non-root numeric user, health check, ports, entry point, config.
    let get = |keyword: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let user = get("USER");
    let uid: u32 = user
        .last()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid, 0);
    let expose: Vec<&str> = get("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    assert_eq!(expose, ["8080", "9901"]);
    assert!(get("HEALTHCHECK")[0].contains("tracebridge-healthcheck"));
    assert_eq!(get("ENTRYPOINT"), [r#"["/usr/local/bin/tracebridge"]"#]);
    assert_eq!(
        get("CMD"),
        [r#"["--config", "/etc/tracebridge/tracebridge.toml"]"#]
    );
    let copies = get("COPY");
    assert!(copies.contains(&"deploy/tracebridge.toml /etc/tracebridge/tracebridge.toml"));
    assert!(copies.contains(&"deploy/healthcheck.sh /usr/local/bin/tracebridge-healthcheck"));

    // Everything copied from the context is let through Dockerfile.dockerignore
    // (an allow-list).
    let ignore = read(&deploy("Dockerfile.dockerignore"));
    let allowed: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    assert!(ignore.lines().any(|l| l.trim() == "*"));
    for (keyword, args) in &instructions {
        if keyword != "COPY" || args.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(
                allowed.contains(source),
                "COPY {source}: not in Dockerfile.dockerignore's allow-list"
            );
            assert!(root().join(source).exists(), "COPY {source}: no such path");
        }
    }
}

// ---------------------------------------------------------------------------------
// Kubernetes

fn find_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// Checks a Deployment's pod template against the config it mounts.
fn check_deployment(deployment: &Yaml, config_map_name: &str, snapshot: &Snapshot) {
    let spec = &deployment["spec"];
    let pod = &spec["template"]["spec"];
    let labels = spec["template"]["metadata"]["labels"].as_hash().unwrap();
    for (k, v) in spec["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(labels.get(k), Some(v), "selector label {k:?} on the pod");
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let containers = list(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
        Some(false)
    );
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                !c["resources"][kind][resource].is_badvalue(),
                "resources.{kind}.{resource}"
            );
        }
    }
    // Ports: the names the probes use, the numbers the config listens on.
    let port = |name: &str| -> i64 {
        let p = list(&c["ports"])
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no container port {name}"));
        int(&p["containerPort"])
    };
    assert_eq!(port("http"), port_of(&snapshot.server.listen[0]));
    assert_eq!(port("admin"), port_of(&snapshot.server.admin_listen));
    assert!(
        snapshot.server.admin_listen.starts_with("0.0.0.0:"),
        "probes reach the pod IP"
    );
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/readyz");
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["port"]), "admin");
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["path"]), "/healthz");
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["port"]), "admin");
    // The config directory is the ConfigMap itself: mounted whole, never by subPath,
    // so the kubelet's `..data` swap reaches the gateway's file watch.
    let args: Vec<&str> = list(&c["args"]).iter().map(s).collect();
    assert_eq!(args, ["--config", "/etc/tracebridge/tracebridge.toml"]);
    let mount = list(&c["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/etc/tracebridge"))
        .expect("a mount at /etc/tracebridge");
    assert!(mount["subPath"].is_badvalue(), "no subPath");
    let volume = list(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(s(&volume["configMap"]["name"]), config_map_name);
    assert!(
        volume["configMap"]["items"].is_badvalue(),
        "the whole ConfigMap"
    );
    // A read-only root: /tmp (default upgrade socket and pid file) is a volume.
    assert!(list(&c["volumeMounts"])
        .iter()
        .any(|m| m["mountPath"].as_str() == Some("/tmp")));
    // preStop sleep + grace period + shutdown timeout fit in the termination grace.
    let pre_stop: u64 = list(&c["lifecycle"]["preStop"]["exec"]["command"])[1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let needed = Duration::from_secs(pre_stop)
        + snapshot.server.grace_period
        + snapshot.server.shutdown_timeout;
    let granted = Duration::from_secs(int(&pod["terminationGracePeriodSeconds"]) as u64);
    assert!(needed < granted, "{needed:?} >= {granted:?}");
}

fn check_selectors(docs: &[Yaml]) {
    let deployment = find_kind(docs, "Deployment");
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_hash()
        .unwrap();
    let service = find_kind(docs, "Service");
    for (k, v) in service["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k:?}");
    }
    assert_eq!(s(&list(&service["spec"]["ports"])[0]["targetPort"]), "http");
    let pdb = find_kind(docs, "PodDisruptionBudget");
    assert_eq!(s(&pdb["apiVersion"]), "policy/v1");
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "PDB selector {k:?}");
    }
    let hpa = find_kind(docs, "HorizontalPodAutoscaler");
    assert_eq!(s(&hpa["apiVersion"]), "autoscaling/v2");
    assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["kind"]), "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let metric = &list(&hpa["spec"]["metrics"])[0];
    assert_eq!(s(&metric["resource"]["name"]), "cpu");
    assert!(
        int(&hpa["spec"]["minReplicas"]) >= 2,
        "the PDB leaves one pod serving"
    );
    // The autoscaler owns the replica count.
    assert!(deployment["spec"]["replicas"].is_badvalue());
}

#[test]
fn kubernetes_manifests_fit_together() {
    let dir = deploy("kubernetes");
    let kustomization = yaml_one(&dir.join("kustomization.yaml"));
    let listed: BTreeSet<&str> = list(&kustomization["resources"]).iter().map(s).collect();
    let mut on_disk = BTreeSet::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name == "kustomization.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        for doc in yaml_docs(&path) {
            for key in ["apiVersion", "kind"] {
                assert!(doc[key].as_str().is_some(), "{name}: {key}");
            }
            assert!(
                doc["metadata"]["name"].as_str().is_some(),
                "{name}: metadata.name"
            );
            docs.push(doc);
        }
        on_disk.insert(name);
    }
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");
    let kinds: BTreeSet<&str> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Service"
        ])
    );

    let config_map = find_kind(&docs, "ConfigMap");
    let toml = s(&config_map["data"]["tracebridge.toml"]);
    let snapshot = load_config(toml, "the ConfigMap's tracebridge.toml");
    let tracebridge::config::Exporter::Otlp(otlp) = &snapshot.telemetry.exporter else {
        panic!("the ConfigMap exports over OTLP to the collector");
    };
    assert!(
        otlp.endpoint.starts_with("http://otel-collector:"),
        "{otlp:?}"
    );
    check_deployment(
        find_kind(&docs, "Deployment"),
        s(&config_map["metadata"]["name"]),
        &snapshot,
    );
    check_selectors(&docs);
}

// ---------------------------------------------------------------------------------
// Helm

/// Every `.Values.a.b` path the templates use.
fn values_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(".Values.") {
        rest = &rest[i + ".Values.".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        out.insert(rest[..end].trim_end_matches('.').to_string());
    }
    out
}

#[test]
fn helm_chart_values_and_templates_agree() {
    let chart_dir = deploy("helm/tracebridge");
    let chart = yaml_one(&chart_dir.join("Chart.yaml"));
    assert_eq!(s(&chart["apiVersion"]), "v2");
    assert_eq!(s(&chart["name"]), "tracebridge");
    assert_eq!(s(&chart["appVersion"]), env!("CARGO_PKG_VERSION"));
    let values = yaml_one(&chart_dir.join("values.yaml"));

    let snapshot = load_config(s(&values["config"]), "the chart's values.config");
    assert_eq!(
        int(&values["containerPorts"]["http"]),
        port_of(&snapshot.server.listen[0])
    );
    assert_eq!(
        int(&values["containerPorts"]["admin"]),
        port_of(&snapshot.server.admin_listen)
    );
    assert_eq!(
        s(&values["podAnnotations"]["prometheus.io/port"]),
        int(&values["containerPorts"]["admin"]).to_string()
    );
    assert_eq!(s(&values["readinessProbe"]["httpGet"]["path"]), "/readyz");
    assert_eq!(s(&values["livenessProbe"]["httpGet"]["path"]), "/healthz");
    assert_eq!(
        values["podSecurityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(
        values["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let needed = Duration::from_secs(int(&values["preStopSleepSeconds"]) as u64)
        + snapshot.server.grace_period
        + snapshot.server.shutdown_timeout;
    assert!(needed < Duration::from_secs(int(&values["terminationGracePeriodSeconds"]) as u64));

    let mut templates = Vec::new();
    files_under(&chart_dir.join("templates"), &mut templates);
    let mut all = String::new();
    for t in &templates {
        let text = read(t);
        for path in values_paths(&text) {
            let mut node = &values;
            for key in path.split('.') {
                node = &node[key];
            }
            assert!(
                !node.is_badvalue(),
                "{}: .Values.{path} is not in values.yaml",
                t.display()
            );
        }
        all.push_str(&text);
    }
    for kind in [
        "kind: ConfigMap",
        "kind: Deployment",
        "kind: Service",
        "kind: PodDisruptionBudget",
        "kind: HorizontalPodAutoscaler",
        "apiVersion: autoscaling/v2",
    ] {
        assert!(all.contains(kind), "templates: no {kind}");
    }
    assert!(
        !all.lines().any(|l| l.trim_start().starts_with("subPath:")),
        "the config is mounted as a directory"
    );
    assert!(
        !all.contains("checksum/config"),
        "no restart on config change: hot reload"
    );
    assert!(all.contains("mountPath: /etc/tracebridge\n"));
    assert!(all.contains(".Values.config | nindent 4"));
}

/// `helm lint` and `helm template`. Ignored by default: no package registry these
/// machines reach ships the helm binary. Run it where helm is installed with
/// `cargo test --test deploy -- --ignored`.
#[test]
#[ignore = "needs the helm binary (not installable here): cargo test --test deploy -- --ignored"]
fn helm_template_renders() {
    let chart = deploy("helm/tracebridge");
    let lint = Command::new("helm")
        .arg("lint")
        .arg(&chart)
        .output()
        .expect("helm is not installed (this test needs it)");
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    for set in ["", "autoscaling.enabled=false", "existingConfigMap=mine"] {
        let mut cmd = Command::new("helm");
        cmd.args(["template", "tb"]).arg(&chart);
        if !set.is_empty() {
            cmd.args(["--set", set]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs: Vec<Yaml> = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap())
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        let deployment = find_kind(&docs, "Deployment");
        if set.starts_with("existingConfigMap") {
            assert!(docs.iter().all(|d| d["kind"].as_str() != Some("ConfigMap")));
            continue;
        }
        let config_map = find_kind(&docs, "ConfigMap");
        let snapshot = load_config(
            s(&config_map["data"]["tracebridge.toml"]),
            "the rendered ConfigMap",
        );
        check_deployment(deployment, s(&config_map["metadata"]["name"]), &snapshot);
        if set.is_empty() {
            check_selectors(&docs);
        } else {
            assert_eq!(int(&deployment["spec"]["replicas"]), 2);
        }
    }
}

// ---------------------------------------------------------------------------------
// OpenTelemetry Collector and the compose demo

#[test]
fn collector_config_fans_out_to_jaeger_and_zipkin() {
    let c = yaml_one(&deploy("otel-collector.yaml"));
    let otlp = &c["receivers"]["otlp"]["protocols"];
    assert_eq!(s(&otlp["grpc"]["endpoint"]), "0.0.0.0:4317");
    assert_eq!(s(&otlp["http"]["endpoint"]), "0.0.0.0:4318");
    let pipeline = &c["service"]["pipelines"]["traces"];
    // Every component a pipeline names is defined.
    for (section, key) in [
        ("receivers", "receivers"),
        ("processors", "processors"),
        ("exporters", "exporters"),
    ] {
        for name in list(&pipeline[key]) {
            assert!(
                !c[section][s(name)].is_badvalue(),
                "{section}.{} is not defined",
                s(name)
            );
        }
    }
    for name in list(&c["service"]["extensions"]) {
        assert!(!c["extensions"][s(name)].is_badvalue());
    }
    let processors: Vec<&str> = list(&pipeline["processors"]).iter().map(s).collect();
    assert!(processors.contains(&"batch"));
    assert_eq!(
        processors[0], "memory_limiter",
        "memory_limiter comes first"
    );
    let exporters: Vec<&str> = list(&pipeline["exporters"]).iter().map(s).collect();
    let jaeger = exporters
        .iter()
        .find(|e| e.starts_with("otlp_grpc/") || e.starts_with("otlp/"))
        .expect("an OTLP exporter to Jaeger");
    assert_eq!(s(&c["exporters"][*jaeger]["endpoint"]), "jaeger:4317");
    assert!(exporters.contains(&"zipkin"));
    assert_eq!(
        s(&c["exporters"]["zipkin"]["endpoint"]),
        "http://zipkin:9411/api/v2/spans"
    );
}

#[test]
fn compose_demo_is_wired_consistently() {
    let dir = deploy("compose");
    let compose = yaml_one(&dir.join("docker-compose.yml"));
    let services = &compose["services"];
    for name in [
        "service-a",
        "tracebridge",
        "service-b",
        "otel-collector",
        "jaeger",
        "zipkin",
    ] {
        assert!(!services[name].is_badvalue(), "no service {name}");
    }
    // The gateway image is this repository's Dockerfile.
    assert_eq!(s(&services["tracebridge"]["build"]["context"]), "../..");
    assert_eq!(
        s(&services["tracebridge"]["build"]["dockerfile"]),
        "deploy/Dockerfile"
    );
    // Every bind-mounted source exists.
    for (_, service) in services.as_hash().unwrap() {
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let source = s(volume).split(':').next().unwrap();
            assert!(dir.join(source).exists(), "volume source {source}");
        }
    }
    // The gateway's config directory is mounted whole (hot reload sees edits).
    let gateway_mount = s(&list(&services["tracebridge"]["volumes"])[0]);
    assert_eq!(gateway_mount, "./gateway:/etc/tracebridge:ro");
    let gateway = load_config(
        &read(&dir.join("gateway/tracebridge.toml")),
        "deploy/compose/gateway/tracebridge.toml",
    );
    let gateway_text = read(&dir.join("gateway/tracebridge.toml"));
    let env = |service: &str, key: &str| -> String {
        s(&services[service]["environment"][key]).to_string()
    };
    // service-a calls the gateway; the gateway calls service-b on its port.
    assert_eq!(
        env("service-a", "NEXT_URL"),
        format!(
            "http://tracebridge:{}/work",
            port_of(&gateway.server.listen[0])
        )
    );
    assert!(gateway_text.contains(&format!("\"service-b:{}\"", env("service-b", "PORT"))));
    // Spans go where the collector listens.
    let collector = yaml_one(&deploy("otel-collector.yaml"));
    let http_port = port_of(s(
        &collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    ));
    let zipkin_port = port_of(s(&collector["receivers"]["zipkin"]["endpoint"]));
    assert!(gateway_text.contains(&format!("endpoint = \"http://otel-collector:{http_port}\"")));
    assert_eq!(
        env("service-a", "OTLP_URL"),
        format!("http://otel-collector:{http_port}/v1/traces")
    );
    assert_eq!(
        env("service-b", "ZIPKIN_URL"),
        format!("http://otel-collector:{zipkin_port}/api/v2/spans")
    );
    assert_eq!(
        s(&list(&services["otel-collector"]["volumes"])[0]),
        "../otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro"
    );
    // Each environment variable given to a sample service is one its script reads.
    for (service, script) in [("service-a", "service_a.py"), ("service-b", "service_b.py")] {
        let source = read(&dir.join("services").join(script));
        for (key, _) in services[service]["environment"].as_hash().unwrap() {
            let key = s(key);
            if key != "PYTHONUNBUFFERED" {
                assert!(
                    source.contains(&format!("os.environ.get(\"{key}\"")),
                    "{script} does not read {key}"
                );
            }
        }
    }
}

/// One request the recorder received: path, content type, body.
type Report = (String, String, Vec<u8>);

/// A recording stand-in for the collector: answers 200 to every POST and keeps
/// (path, content type, body).
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<Report>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let r = r.clone();
                std::thread::spawn(move || {
                    let _ = Recorder::serve(stream, &r);
                });
            }
        });
        Recorder { port, received }
    }

    fn serve(stream: TcpStream, received: &Mutex<Vec<Report>>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let (mut length, mut content_type) = (0usize, String::new());
            loop {
                let mut header = String::new();
                reader.read_line(&mut header)?;
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        "content-type" => content_type = value.trim().to_string(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            received.lock().unwrap().push((path, content_type, body));
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        }
    }

    fn received(&self) -> Vec<Report> {
        self.received.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The compose demo on loopback: service A (Jaeger headers, OTLP/JSON spans) → the
/// gateway on the compose config (peers and collector moved to loopback) → service B
/// (B3 headers, Zipkin spans), all reporting to a recording collector. The three spans
/// must form one trace: A's span is the gateway's parent, the gateway's span is B's.
#[test]
fn compose_demo_services_make_one_trace_through_the_gateway() {
    // python3 is a prerequisite of the project (README): a machine without it fails here.
    let python = "python3";
    let dir = deploy("compose");
    let recorder = Recorder::start();
    let (port_a, port_b, port_gw, port_admin) =
        (free_port(), free_port(), free_port(), free_port());

    let mut doc: toml::Table = read(&dir.join("gateway/tracebridge.toml")).parse().unwrap();
    let server = doc["server"].as_table_mut().unwrap();
    server.insert("listen".into(), vec![format!("127.0.0.1:{port_gw}")].into());
    server.insert(
        "admin_listen".into(),
        format!("127.0.0.1:{port_admin}").into(),
    );
    doc["telemetry"].as_table_mut().unwrap().insert(
        "endpoint".into(),
        format!("http://127.0.0.1:{}", recorder.port).into(),
    );
    doc["upstreams"]["service_b"]
        .as_table_mut()
        .unwrap()
        .insert("peers".into(), vec![format!("127.0.0.1:{port_b}")].into());
    let tmp = tempfile::tempdir().unwrap();
    let config_path = tmp.path().join("tracebridge.toml");
    std::fs::write(&config_path, toml::to_string(&doc).unwrap()).unwrap();

    let script = |name: &str| dir.join("services").join(name);
    let _b = Guard(
        Command::new(python)
            .arg(script("service_b.py"))
            .env("HOST", "127.0.0.1")
            .env("PORT", port_b.to_string())
            .stdout(Stdio::null())
            .env(
                "ZIPKIN_URL",
                format!("http://127.0.0.1:{}/api/v2/spans", recorder.port),
            )
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (a prerequisite) cannot be started"),
    );
    let _gw = Guard(
        Command::new(env!("CARGO_BIN_EXE_tracebridge"))
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _a = Guard(
        Command::new(python)
            .arg(script("service_a.py"))
            .env("HOST", "127.0.0.1")
            .env("PORT", port_a.to_string())
            .stdout(Stdio::null())
            .env("NEXT_URL", format!("http://127.0.0.1:{port_gw}/work"))
            .env(
                "OTLP_URL",
                format!("http://127.0.0.1:{}/v1/traces", recorder.port),
            )
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for (port, what) in [
        (port_b, "service B"),
        (port_admin, "the gateway"),
        (port_a, "service A"),
    ] {
        wait_for_port(port, what);
    }

    let (status, body) = http_get(port_a, "/checkout").unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let trace_id = answer["trace_id"].as_str().unwrap().to_string();
    let span_a = answer["span_id"].as_str().unwrap().to_string();
    let b = &answer["next_hop"];
    assert_eq!(
        b["trace_id"].as_str(),
        Some(trace_id.as_str()),
        "{answer:#}"
    );
    let received = &b["received_trace_headers"];
    assert!(received["x-b3-traceid"].is_string(), "B got B3: {answer:#}");
    assert!(received["uber-trace-id"].is_null(), "stripped: {answer:#}");
    let parent_of_b = b["parent_span_id"].as_str().unwrap().to_string();
    assert_ne!(
        parent_of_b, span_a,
        "the gateway's span sits between A and B"
    );

    // Wait for the three reports: A's OTLP/JSON, the gateway's OTLP/protobuf, B's Zipkin.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (a_json, gw_proto, b_json) = loop {
        let got = recorder.received();
        let find = |path: &str, ct: &str| {
            got.iter()
                .find(|(p, c, _)| p == path && c.starts_with(ct))
                .map(|(_, _, b)| b.clone())
        };
        if let (Some(a), Some(g), Some(b)) = (
            find("/v1/traces", "application/json"),
            find("/v1/traces", "application/x-protobuf"),
            find("/api/v2/spans", "application/json"),
        ) {
            break (a, g, b);
        }
        assert!(
            Instant::now() < deadline,
            "reports received: {:?}",
            got.iter()
                .map(|(p, c, b)| (p, c, b.len()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let a: serde_json::Value = serde_json::from_slice(&a_json).unwrap();
    let a_span = &a["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(a_span["traceId"].as_str(), Some(trace_id.as_str()));
    assert_eq!(a_span["spanId"].as_str(), Some(span_a.as_str()));

    use prost::Message;
    let request =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
            gw_proto.as_slice(),
        )
        .unwrap();
    let gw_span = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|s| hex(&s.trace_id) == trace_id)
        .expect("the gateway's span in A's trace");
    assert_eq!(
        hex(&gw_span.parent_span_id),
        span_a,
        "A's span is the gateway's parent"
    );
    assert_eq!(
        hex(&gw_span.span_id),
        parent_of_b,
        "the gateway's span is B's parent"
    );

    let b_report: serde_json::Value = serde_json::from_slice(&b_json).unwrap();
    assert_eq!(b_report[0]["traceId"].as_str(), Some(trace_id.as_str()));
    assert_eq!(b_report[0]["parentId"].as_str(), Some(parent_of_b.as_str()));
    assert_eq!(
        b_report[0]["localEndpoint"]["serviceName"].as_str(),
        Some("service-b")
    );
}

// ---------------------------------------------------------------------------------
// The container health check and the systemd upgrade helper, against the real binary

/// Starts the gateway on free loopback ports with an echo route; (child, proxy port,
/// admin port, config path).
fn start_gateway(dir: &Path) -> (Child, u16, u16, PathBuf) {
    let (port, admin) = (free_port(), free_port());
    let path = dir.join("tracebridge.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n\
             grace_period = \"1s\"\nshutdown_timeout = \"1s\"\n\
             pid_file = \"{pid}\"\nupgrade_sock = \"{sock}\"\n\
             [telemetry]\nexporter = \"none\"\n\
             [upstreams.e]\nkind = \"echo\"\n[[routes]]\nupstream = \"e\"\n",
            pid = dir.join("tracebridge.pid").display(),
            sock = dir.join("upgrade.sock").display(),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tracebridge"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(admin, "the gateway");
    (child, port, admin, path)
}

#[test]
fn container_healthcheck_script_probes_the_admin_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, _, admin, _) = start_gateway(tmp.path());
    let _guard = Guard(child);
    let run = |addr: &str, path: Option<&str>| -> bool {
        let mut cmd = Command::new("bash");
        cmd.arg(deploy("healthcheck.sh"))
            .env("TRACEBRIDGE_HEALTHCHECK_ADDR", addr)
            .stderr(Stdio::null());
        if let Some(p) = path {
            cmd.arg(p);
        }
        cmd.status().unwrap().success()
    };
    let addr = format!("127.0.0.1:{admin}");
    assert!(run(&addr, None), "/healthz answers 200");
    assert!(run(&addr, Some("/readyz")), "/readyz answers 200");
    assert!(!run(&addr, Some("/no-such-endpoint")), "a 404 is unhealthy");
    assert!(
        !run("127.0.0.1:1", None),
        "nothing listening (port 1, tcpmux, unused) is unhealthy"
    );
}

/// The unit file's commands agree with each other and with the helper's arguments.
#[test]
fn systemd_unit_is_consistent() {
    let text = read(&deploy("systemd/tracebridge.service"));
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut sections = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            sections.push(line.to_string());
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        keys.push((k.to_string(), v.to_string()));
    }
    assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    let get = |key: &str| -> &str {
        let found: Vec<&str> = keys
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{key}: {found:?}");
        found[0]
    };
    let exec_start = get("ExecStart");
    assert_eq!(
        exec_start,
        "/usr/local/bin/tracebridge --config /etc/tracebridge/tracebridge.toml"
    );
    let pid_file = get("PIDFile");
    assert_eq!(
        pid_file,
        format!("/run/{}/tracebridge.pid", get("RuntimeDirectory"))
    );
    let reload: Vec<&str> = get("ExecReload").split_whitespace().collect();
    assert!(reload[0].ends_with("/tracebridge-upgrade.sh"));
    let (bin, config) = exec_start.split_once(" --config ").unwrap();
    assert_eq!(reload[1..], [bin, config, pid_file]);
    assert!(get("ExecStartPost").contains(&format!("> {pid_file}")));
    assert!(get("ExecStartPre").contains(&format!("{bin} check --config {config}")));
    assert_eq!(get("Type"), "exec");
    assert_eq!(get("Restart"), "always");
    assert_ne!(get("User"), "root");
    assert_eq!(get("NoNewPrivileges"), "yes");
    assert_eq!(get("ProtectSystem"), "strict");
    assert!(
        get("RestrictAddressFamilies").contains("AF_UNIX"),
        "the upgrade socket"
    );
}

fn read_pid(path: &Path) -> u32 {
    read(path).trim().parse().unwrap()
}

/// What `systemctl reload` runs, without systemd: the helper gets the old PID in
/// $MAINPID, starts the new process, writes its PID, and the old process hands over
/// and exits while requests keep being served.
#[test]
fn systemd_upgrade_helper_hands_the_sockets_to_a_new_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut old, port, _, config_path) = start_gateway(tmp.path());
    let pid_file = tmp.path().join("tracebridge.pid");
    std::fs::write(&pid_file, format!("{}\n", old.id())).unwrap();
    assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));
    // The helper's output goes to a file, not a pipe: the new gateway inherits it (as
    // it inherits the journal under systemd) and would hold a pipe open.
    let log = tmp.path().join("helper.log");
    let helper = |config: &Path| {
        let status = Command::new("sh")
            .arg(deploy("systemd/tracebridge-upgrade.sh"))
            .arg(env!("CARGO_BIN_EXE_tracebridge"))
            .arg(config)
            .arg(&pid_file)
            .env("MAINPID", old.id().to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        (status, read(&log))
    };

    // A config the binary rejects: nothing changes.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten_on = 1\n").unwrap();
    let (status, stderr) = helper(&bad);
    assert!(!status.success());
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert_eq!(read_pid(&pid_file), old.id());
    assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));

    // Requests in a loop while the helper runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, served) = (stop.clone(), Arc::new(Mutex::new((0u32, 0u32))));
    let served2 = served.clone();
    let load = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let ok = http_get(port, "/").is_some_and(|r| r.0 == 200);
            let mut s = served2.lock().unwrap();
            if ok {
                s.0 += 1;
            } else {
                s.1 += 1;
            }
        }
    });

    let (status, stderr) = helper(&config_path);
    assert!(status.success(), "{stderr}");
    let new_pid = read_pid(&pid_file);
    assert_ne!(new_pid, old.id());
    assert!(alive(new_pid), "the new process runs");
    assert!(
        stderr.contains(&format!("upgraded: {} -> {new_pid}", old.id())),
        "{stderr}"
    );

    // The old process drains and exits by itself (5 s hand-over window + grace).
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = old.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let (ok, failed) = *served.lock().unwrap();
    assert_eq!(
        http_get(port, "/").map(|r| r.0),
        Some(200),
        "the new process serves"
    );
    kill(new_pid, "-INT");
    assert!(ok > 0);
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the upgrade",
        ok + failed
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(new_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
