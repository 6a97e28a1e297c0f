//! `deploy/`: the container image, compose file, Kubernetes manifests and alerting rules fit
//! together and with Weir, without Docker or a cluster: every YAML file parses, what compose and
//! the Dockerfiles build from and mount exists, the Kubernetes objects reference each other
//! consistently, both pipelines pass `weir validate` with the files their containers see, and
//! the alerts use only metrics Weir exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use crate::common::*;

/// Where a pipeline's relative paths resolve in the image (its `WORKDIR`).
const IMAGE_WORKDIR: &str = "/etc/weir";

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// Every document of a YAML file, with merge keys (`<<: *anchor`) applied.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut documents = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let mut value =
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: document {}: {e}", path.display(), i + 1));
        value.apply_merge().unwrap_or_else(|e| panic!("{}: document {}: merge keys: {e}", path.display(), i + 1));
        if !value.is_null() {
            documents.push(value);
        }
    }
    documents
}

/// The one document of a YAML file.
fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{} should hold one document", path.display());
    documents.remove(0)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} should be a string, is {value:?}"))
}

/// `${VAR}` names in a pipeline config's string values.
fn interpolated_variables(config_text: &str) -> BTreeSet<String> {
    fn walk(value: &toml::Value, names: &mut BTreeSet<String>) {
        match value {
            toml::Value::String(text) => {
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    let after = &rest[start + 2..];
                    let end = after.find('}').expect("an interpolation is closed");
                    names.insert(after[..end].to_string());
                    rest = &after[end..];
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|item| walk(item, names)),
            toml::Value::Table(table) => table.values().for_each(|item| walk(item, names)),
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    walk(&toml::from_str::<toml::Value>(config_text).expect("the pipeline is TOML"), &mut names);
    names
}

/// Copies a file, or a directory recursively, to `to`.
fn copy_into(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_into(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
}

/// A path of the container under the image's working directory, as a path relative to it.
fn under_workdir(container_path: &str) -> Option<&str> {
    container_path.strip_prefix(IMAGE_WORKDIR)?.strip_prefix('/')
}

/// `weir validate -c CONFIG` run in `workdir` (standing in for the container's /etc/weir) with
/// exactly the environment `env`, asserting it passes.
fn assert_validates(config: &Path, workdir: &Path, env: &BTreeMap<String, String>) {
    let data = tempfile::tempdir().unwrap();
    let mut command = weir(data.path());
    command.current_dir(workdir).arg("validate").arg("-c").arg(config).envs(env);
    let output = run(&mut command);
    assert_ok(&output);
    assert!(stdout(&output).contains(": ok ("), "{}", stdout(&output));
}

/// The entries of `env` named in `names`.
fn only(env: &BTreeMap<String, String>, names: &BTreeSet<String>) -> BTreeMap<String, String> {
    env.iter().filter(|(name, _)| names.contains(*name)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A Dockerfile's `COPY` instruction.
#[derive(Debug)]
struct CopyInstruction {
    /// `--from=…`, `--chmod=…` and the like.
    flags: Vec<String>,
    sources: Vec<String>,
    destination: String,
}

impl CopyInstruction {
    /// The build stage it copies from, if not the build context.
    fn source_stage(&self) -> Option<&str> {
        self.flags.iter().find_map(|f| f.strip_prefix("--from="))
    }
}

/// A Dockerfile's `COPY` instructions.
fn dockerfile_copies(path: &Path) -> Vec<CopyInstruction> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut copies = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("COPY ") else { continue };
        let (flags, mut sources): (Vec<String>, Vec<String>) =
            rest.split_whitespace().map(str::to_string).partition(|word| word.starts_with("--"));
        let destination = sources.pop().expect("COPY has a destination");
        assert!(!sources.is_empty(), "{}: `{line}` has no source", path.display());
        copies.push(CopyInstruction { flags, sources, destination });
    }
    copies
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    // Files of several documents (as `kubectl kustomize` prints) are read document by document.
    let scratch = tempfile::tempdir().unwrap();
    let multi = scratch.path().join("multi.yaml");
    std::fs::write(&multi, "a: 1\n---\nb: &x {c: 2}\nd:\n  <<: *x\n").unwrap();
    let documents = yaml_documents(&multi);
    assert_eq!(documents.len(), 2, "{documents:?}");
    assert_eq!(documents[1]["d"]["c"].as_u64(), Some(2), "merge keys are applied: {documents:?}");

    let mut files = Vec::new();
    files_under(&deploy_dir(), &mut files);
    let yaml_files: Vec<PathBuf> =
        files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml")).collect();
    for expected in ["compose.yaml", "k8s/statefulset.yaml", "k8s/kustomization.yaml", "prometheus/alerts.yaml"] {
        assert!(yaml_files.contains(&deploy_dir().join(expected)), "deploy/{expected} is missing: {yaml_files:?}");
    }
    for path in &yaml_files {
        let documents = yaml_documents(path);
        assert!(!documents.is_empty(), "{} holds no document", path.display());
        for document in &documents {
            assert!(document.is_mapping(), "{}: a document is not a mapping: {document:?}", path.display());
        }
    }
}

#[test]
fn compose_builds_and_mounts_files_that_exist_and_gives_each_worker_its_own_store() {
    let deploy = deploy_dir();
    let compose = yaml(&deploy.join("compose.yaml"));
    let services = compose["services"].as_mapping().expect("compose has services");
    let mut workers = BTreeMap::new();
    for (name, service) in services {
        let name = str_of(name, "a service's name");
        if let Some(build) = service.get("build") {
            let context = deploy.join(str_of(&build["context"], "build.context"));
            assert!(context.is_dir(), "{name}: build context {} does not exist", context.display());
            let dockerfile = context.join(build.get("dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile"));
            assert!(dockerfile.is_file(), "{name}: {} does not exist", dockerfile.display());
            for copy in dockerfile_copies(&dockerfile) {
                if copy.source_stage().is_some() {
                    continue;
                }
                for source in &copy.sources {
                    assert!(
                        context.join(source).exists(),
                        "{}: COPY source {source} is not in the build context {}",
                        dockerfile.display(),
                        context.display()
                    );
                }
            }
        }
        let mut data_volume = None;
        for volume in service.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
            let spec = str_of(volume, "a volume");
            let mut parts = spec.split(':');
            let (source, target) = (parts.next().unwrap(), parts.next().expect("volume SOURCE:TARGET"));
            if source.starts_with('.') || source.starts_with('/') {
                assert!(deploy.join(source).exists(), "{name}: mounted {source} does not exist");
            } else {
                let declared = compose["volumes"].as_mapping().is_some_and(|v| v.contains_key(source));
                assert!(declared, "{name}: volume `{source}` is not declared under volumes");
            }
            if target == "/var/lib/weir" {
                data_volume = Some(source.to_string());
            }
        }
        if let Some(worker) = service.get("environment").and_then(|e| e.get("WEIR_WORKER")) {
            let data_volume = data_volume.unwrap_or_else(|| panic!("{name}: no volume at /var/lib/weir"));
            workers.insert(str_of(worker, "WEIR_WORKER").to_string(), (name.to_string(), data_volume));
        }
    }
    assert_eq!(workers.keys().collect::<Vec<_>>(), ["0/2", "1/2"], "the workers' assignments: {workers:?}");
    let volumes: BTreeSet<&String> = workers.values().map(|(_, v)| v).collect();
    assert_eq!(volumes.len(), workers.len(), "each worker needs its own store: {workers:?}");
}

#[test]
fn the_dockerfile_copies_what_exists_and_leaves_out_what_it_ignores() {
    let dockerfile = deploy_dir().join("Dockerfile");
    let ignored: Vec<String> = std::fs::read_to_string(deploy_dir().join("Dockerfile.dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    assert!(ignored.contains(&"**/target".to_string()), "the build output stays out of the context: {ignored:?}");
    let copies = dockerfile_copies(&dockerfile);
    assert!(copies.len() >= 5, "{copies:?}");
    for copy in &copies {
        for source in &copy.sources {
            if let Some(stage) = copy.source_stage() {
                assert_eq!(stage, "builder", "{source}");
                // The builder's /src is the repository; anything else there was built.
                if let Some(in_repo) = source.strip_prefix("/src/") {
                    assert!(repo_root().join(in_repo).exists(), "COPY --from=builder {source}: not in the repository");
                }
            } else {
                assert!(repo_root().join(source).exists(), "COPY {source}: not in the repository");
                let top = source.split('/').next().unwrap();
                assert!(!ignored.iter().any(|i| i == top || i == source), "COPY {source} is dockerignored");
            }
        }
    }
}

#[test]
fn the_compose_pipeline_validates_with_what_the_worker_container_sees() {
    let deploy = deploy_dir();
    let compose = yaml(&deploy.join("compose.yaml"));
    let service = &compose["services"]["weir-0"];
    // The container's /etc/weir: what the image puts there, then compose's mounts over it.
    let workdir = tempfile::tempdir().unwrap();
    for copy in dockerfile_copies(&deploy.join("Dockerfile")) {
        if let (Some(relative), Some("builder")) = (under_workdir(&copy.destination), copy.source_stage()) {
            let in_repo = copy.sources[0].strip_prefix("/src/").expect("the builder's sources are in /src");
            copy_into(&repo_root().join(in_repo), &workdir.path().join(relative));
        }
    }
    let mut config = None;
    for volume in service["volumes"].as_sequence().expect("weir-0 has volumes") {
        let mut parts = str_of(volume, "a volume").split(':');
        let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
        if let Some(relative) = under_workdir(target) {
            copy_into(&deploy.join(source), &workdir.path().join(relative));
            if target.ends_with(".toml") {
                config = Some(workdir.path().join(relative));
            }
        }
    }
    let config = config.expect("weir-0 mounts a pipeline config under /etc/weir");
    let env: BTreeMap<String, String> = service["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (str_of(k, "a variable").to_string(), str_of(v, "a value").to_string()))
        .collect();
    let text = std::fs::read_to_string(&config).unwrap();
    let used = interpolated_variables(&text);
    for name in &used {
        assert!(env.contains_key(name), "the pipeline uses ${{{name}}}, which weir-0's environment lacks");
    }
    assert!(text.contains("backend = \"fluvio\""), "the compose pipeline runs on Fluvio");
    assert!(text.contains("endpoint = \"fluvio-sc:9003\""), "and reaches the compose file's SC");
    assert!(compose["services"]["fluvio-sc"].is_mapping());
    assert_validates(&config, workdir.path(), &only(&env, &used));
}

#[test]
fn the_kubernetes_objects_reference_each_other() {
    let k8s = deploy_dir().join("k8s");
    let kustomization = yaml(&k8s.join("kustomization.yaml"));
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_sequence().expect("resources") {
        let path = k8s.join(str_of(resource, "a resource"));
        assert!(path.is_file(), "{} is listed but missing", path.display());
        objects.extend(yaml_documents(&path));
    }
    for object in &objects {
        for key in ["apiVersion", "kind"] {
            assert!(object[key].is_string(), "an object has no {key}: {object:?}");
        }
        assert!(object["metadata"]["name"].is_string(), "an object has no name: {object:?}");
    }
    let of_kind =
        |kind: &str| objects.iter().filter(move |o| o["kind"].as_str() == Some(kind)).collect::<Vec<&Value>>();
    let generated: BTreeSet<&str> = kustomization["configMapGenerator"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|generator| {
            for file in generator["files"].as_sequence().expect("generator files") {
                assert!(k8s.join(str_of(file, "a file")).is_file(), "generated from a missing file: {file:?}");
            }
            str_of(&generator["name"], "a generator's name")
        })
        .collect();

    let [statefulset] = of_kind("StatefulSet")[..] else { panic!("one StatefulSet") };
    let spec = &statefulset["spec"];
    let template_labels = spec["template"]["metadata"]["labels"].as_mapping().expect("pod labels");
    let selects_pods = |selector: &Value, what: &str| {
        let selector = selector.as_mapping().unwrap_or_else(|| panic!("{what} has a selector"));
        assert!(!selector.is_empty(), "{what}: empty selector");
        for (key, value) in selector {
            assert_eq!(template_labels.get(key), Some(value), "{what} selects {key:?}={value:?}, not on the pods");
        }
    };
    selects_pods(&spec["selector"]["matchLabels"], "the StatefulSet");
    let service = of_kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == spec["serviceName"])
        .expect("the StatefulSet's serviceName is a Service here");
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"), "the StatefulSet's Service is headless");
    selects_pods(&service["spec"]["selector"], "the Service");
    for pdb in of_kind("PodDisruptionBudget") {
        selects_pods(&pdb["spec"]["selector"]["matchLabels"], "the PodDisruptionBudget");
    }
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_sequence()
        .expect("the workers' stores are PersistentVolumeClaims")
        .iter()
        .map(|c| str_of(&c["metadata"]["name"], "a claim"))
        .collect();

    let pod = &spec["template"]["spec"];
    let [container] = &pod["containers"].as_sequence().expect("containers")[..] else { panic!("one container") };
    let volumes: BTreeMap<&str, &Value> =
        pod["volumes"].as_sequence().unwrap().iter().map(|v| (str_of(&v["name"], "a volume's name"), v)).collect();
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    let mut mounts = BTreeMap::new();
    for mount in container["volumeMounts"].as_sequence().unwrap() {
        let name = str_of(&mount["name"], "a mount's name");
        let path = str_of(&mount["mountPath"], "a mountPath");
        mounts.insert(path.to_string(), name.to_string());
        if claims.contains(&name) {
            continue;
        }
        let volume = volumes.get(name).unwrap_or_else(|| panic!("mount {name} has no volume"));
        if let Some(config_map) = volume["configMap"]["name"].as_str() {
            // A ConfigMap is generated here, or made by a command the README gives.
            let made = generated.contains(config_map) || readme.contains(&format!("create configmap {config_map} "));
            assert!(made, "ConfigMap {config_map} is neither generated nor created in deploy/README.md");
        }
    }
    assert!(claims.contains(&mounts["/var/lib/weir"].as_str()), "the data directory is on the claim: {mounts:?}");

    // WEIR_WORKER is I/N with N = replicas.
    let env: BTreeMap<&str, &Value> =
        container["env"].as_sequence().unwrap().iter().map(|e| (str_of(&e["name"], "a variable"), e)).collect();
    let replicas = spec["replicas"].as_u64().expect("replicas");
    let workers = env["WEIR_WORKERS"]["value"].as_str();
    assert_eq!(workers, Some(replicas.to_string().as_str()), "WEIR_WORKERS is the StatefulSet's replicas");
    assert_eq!(env["WEIR_WORKER"]["value"].as_str(), Some("$(WEIR_WORKER_INDEX)/$(WEIR_WORKERS)"));
    let index = env["WEIR_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"].as_str();
    assert_eq!(index, Some("metadata.labels['apps.kubernetes.io/pod-index']"));
    // Kubernetes expands $(NAME) only from variables defined earlier in the list.
    let order: Vec<&str> =
        container["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    let position = |name| order.iter().position(|n| *n == name).unwrap();
    assert!(
        position("WEIR_WORKER_INDEX") < position("WEIR_WORKER") && position("WEIR_WORKERS") < position("WEIR_WORKER")
    );

    // The server's port is the container's, the probes' and the scrape annotation's.
    let pipeline = std::fs::read_to_string(k8s.join("pipeline.toml")).unwrap();
    let pipeline: toml::Table = toml::from_str(&pipeline).unwrap();
    let listen = pipeline["server"]["listen"].as_str().expect("[server] listen");
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let [container_port] = &container["ports"].as_sequence().unwrap()[..] else { panic!("one port") };
    assert_eq!(container_port["containerPort"].as_u64(), Some(port));
    let port_name = &container_port["name"];
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"].as_str(), Some("/health"), "{probe}");
        assert_eq!(&container[probe]["httpGet"]["port"], port_name, "{probe}");
    }
    let annotations = &spec["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(port.to_string().as_str()));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
    assert_eq!(&service["spec"]["ports"][0]["targetPort"], port_name);
}

#[test]
fn the_kubernetes_pipeline_validates_with_what_the_pod_sees() {
    let k8s = deploy_dir().join("k8s");
    let statefulset = yaml(&k8s.join("statefulset.yaml"));
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let config_in_pod = args[args.iter().position(|a| *a == "-c").expect("-c CONFIG") + 1];
    let mounts: BTreeMap<&str, &str> = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap(), m["name"].as_str().unwrap()))
        .collect();
    assert_eq!(mounts["/etc/weir/config"], "config", "the ConfigMap weir-pipeline holds {config_in_pod}");
    assert_eq!(mounts["/etc/weir/policies"], "policies");

    // The pod's /etc/weir: the pipeline ConfigMap, and the policies the README puts in weir-policies.
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    assert!(readme.contains("create configmap weir-policies --from-file=examples/policies/"), "README");
    let workdir = tempfile::tempdir().unwrap();
    let config = workdir.path().join(under_workdir(config_in_pod).expect("the config is under /etc/weir"));
    copy_into(&k8s.join("pipeline.toml"), &config);
    copy_into(&repo_root().join("examples/policies"), &workdir.path().join("policies"));

    // The environment: the container's plain values and the example Secret's keys.
    let mut env = BTreeMap::new();
    for variable in container["env"].as_sequence().unwrap() {
        if let Some(value) = variable["value"].as_str() {
            env.insert(str_of(&variable["name"], "a variable").to_string(), value.to_string());
        }
    }
    let secret = yaml(&k8s.join("secret.example.yaml"));
    let from_secret = container["envFrom"][0]["secretRef"]["name"].as_str();
    assert_eq!(from_secret, secret["metadata"]["name"].as_str(), "envFrom names the example Secret");
    for (key, value) in secret["stringData"].as_mapping().expect("stringData") {
        env.insert(str_of(key, "a key").to_string(), str_of(value, "a value").to_string());
    }
    let text = std::fs::read_to_string(&config).unwrap();
    let used = interpolated_variables(&text);
    assert!(used.contains("OKTA_API_TOKEN"), "{used:?}");
    for name in &used {
        assert!(env.contains_key(name), "the pipeline uses ${{{name}}}, which the pod's environment lacks");
    }
    assert_validates(&config, workdir.path(), &only(&env, &used));
}

#[test]
fn the_alerts_use_only_metrics_weir_exports() {
    let exported = std::fs::read_to_string(repo_root().join("pipeline/src/runner/metrics.rs")).unwrap();
    let rules = yaml(&deploy_dir().join("prometheus/alerts.yaml"));
    let mut checked = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = str_of(&rule["alert"], "an alert's name");
            let expr = str_of(&rule["expr"], "an expr");
            let metrics: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("weir_"))
                .collect();
            assert!(!metrics.is_empty(), "{alert} uses no Weir metric: {expr}");
            for metric in metrics {
                assert!(exported.contains(&format!("\"{metric}\"")), "{alert}: Weir exports no {metric}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "{checked}");
}
