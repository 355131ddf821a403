//! Intake v2 events (`metadata`, `transaction`, `span`, `error`, `metricset`, `log`): the wire
//! types with APM Server's validation rules, and their mapping onto [`ApmEvent`].
//!
//! Field order, rule order and messages follow APM Server's generated decoder
//! (`apm-data/input/elasticapm/internal/modeldecoder/v2`), because the first failing rule is the
//! one reported. This module never writes documents and never sees HTTP.

use std::borrow::Cow;

use super::event::*;
use super::json::rules::*;
use super::json::{
    IsSet, JAny, JBool, JFloat, JHeaders, JInt, JMap, JObject, JStr, JTime, JVec, LabelIn,
    json_struct,
};
use super::map::*;

json_struct! {
    /// `{"metadata": {...}}`
    pub struct MetadataRoot<'a>: "v2.metadataRoot" {
        /// The metadata.
        metadata: Metadata<'a> = "metadata" / "Metadata",
    }
}

json_struct! {
    /// Metadata shared by the events of one request.
    pub struct Metadata<'a>: "v2.metadata" {
        /// Global labels.
        labels: JMap<'a, LabelIn<'a>> = "labels" / "Labels",
        /// The monitored service.
        service: MetadataService<'a> = "service" / "Service",
        /// Cloud metadata.
        cloud: MetadataCloud<'a> = "cloud" / "Cloud",
        /// System metadata.
        system: MetadataSystem<'a> = "system" / "System",
        /// User metadata.
        user: User<'a> = "user" / "User",
        /// Network metadata.
        network: Network<'a> = "network" / "Network",
        /// Process metadata.
        process: MetadataProcess<'a> = "process" / "Process",
    }
}

json_struct! {
    /// `metadata.service`
    pub struct MetadataService<'a>: "v2.metadataService" {
        /// The agent.
        agent: MetadataServiceAgent<'a> = "agent" / "Agent",
        /// Environment.
        environment: Option<JStr<'a>> = "environment" / "Environment",
        /// Framework.
        framework: NameVersionIn<'a> = "framework" / "Framework",
        /// Unique service id (not indexed).
        id: Option<JStr<'a>> = "id" / "ID",
        /// Language.
        language: NameVersionIn<'a> = "language" / "Language",
        /// Service name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Service node.
        node: ServiceNode<'a> = "node" / "Node",
        /// Runtime.
        runtime: NameVersionIn<'a> = "runtime" / "Runtime",
        /// Service version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `metadata.service.agent`
    pub struct MetadataServiceAgent<'a>: "v2.metadataServiceAgent" {
        /// Activation method.
        activation_method: Option<JStr<'a>> = "activation_method" / "ActivationMethod",
        /// Ephemeral id.
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" / "EphemeralID",
        /// Agent name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Agent version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// A name and a version (framework, language, runtime).
    pub struct NameVersionIn<'a>: "v2.nameVersion" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `service.node`
    pub struct ServiceNode<'a>: "v2.serviceNode" {
        /// Configured node name.
        configured_name: Option<JStr<'a>> = "configured_name" / "Name",
    }
}

json_struct! {
    /// `metadata.cloud`
    pub struct MetadataCloud<'a>: "v2.metadataCloud" {
        /// Account.
        account: IdName<'a> = "account" / "Account",
        /// Availability zone.
        availability_zone: Option<JStr<'a>> = "availability_zone" / "AvailabilityZone",
        /// Instance.
        instance: IdName<'a> = "instance" / "Instance",
        /// Machine.
        machine: CloudMachine<'a> = "machine" / "Machine",
        /// Project.
        project: IdName<'a> = "project" / "Project",
        /// Provider.
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// Region.
        region: Option<JStr<'a>> = "region" / "Region",
        /// Cloud service.
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// An id and a name.
    pub struct IdName<'a>: "v2.idName" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// A name.
    pub struct NameOnly<'a>: "v2.nameOnly" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// `cloud.machine`
    pub struct CloudMachine<'a>: "v2.metadataCloudMachine" {
        /// Machine type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `metadata.system`
    pub struct MetadataSystem<'a>: "v2.metadataSystem" {
        /// Architecture.
        architecture: Option<JStr<'a>> = "architecture" / "Architecture",
        /// Configured hostname.
        configured_hostname: Option<JStr<'a>> = "configured_hostname" / "ConfiguredHostname",
        /// Container.
        container: IdOnly<'a> = "container" / "Container",
        /// Detected hostname.
        detected_hostname: Option<JStr<'a>> = "detected_hostname" / "DetectedHostname",
        /// Deprecated hostname.
        hostname: Option<JStr<'a>> = "hostname" / "DeprecatedHostname",
        /// Kubernetes.
        kubernetes: MetadataKubernetes<'a> = "kubernetes" / "Kubernetes",
        /// Platform.
        platform: Option<JStr<'a>> = "platform" / "Platform",
        /// OTel host.id.
        host_id: Option<JStr<'a>> = "host_id" / "HostId",
    }
}

json_struct! {
    /// An id.
    pub struct IdOnly<'a>: "v2.idOnly" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
    }
}

json_struct! {
    /// `system.kubernetes`
    pub struct MetadataKubernetes<'a>: "v2.metadataSystemKubernetes" {
        /// Namespace.
        namespace: Option<JStr<'a>> = "namespace" / "Namespace",
        /// Node.
        node: NameOnly<'a> = "node" / "Node",
        /// Pod.
        pod: KubernetesPod<'a> = "pod" / "Pod",
    }
}

json_struct! {
    /// `kubernetes.pod`
    pub struct KubernetesPod<'a>: "v2.metadataSystemKubernetesPod" {
        /// Pod name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Pod uid.
        uid: Option<JStr<'a>> = "uid" / "UID",
    }
}

json_struct! {
    /// `user` (metadata or event context)
    pub struct User<'a>: "v2.user" {
        /// Domain.
        domain: Option<JStr<'a>> = "domain" / "Domain",
        /// Id: a string or an integer.
        id: Option<JAny> = "id" / "ID",
        /// Email.
        email: Option<JStr<'a>> = "email" / "Email",
        /// User name.
        username: Option<JStr<'a>> = "username" / "Name",
    }
}

json_struct! {
    /// `network`
    pub struct Network<'a>: "v2.network" {
        /// Connection.
        connection: NetworkConnection<'a> = "connection" / "Connection",
    }
}

json_struct! {
    /// `network.connection`
    pub struct NetworkConnection<'a>: "v2.networkConnection" {
        /// Connection type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `metadata.process`
    pub struct MetadataProcess<'a>: "v2.metadataProcess" {
        /// Command line.
        argv: JVec<JStr<'a>> = "argv" / "Argv",
        /// Title.
        title: Option<JStr<'a>> = "title" / "Title",
        /// Process id.
        pid: Option<JInt> = "pid" / "Pid",
        /// Parent process id.
        ppid: Option<JInt> = "ppid" / "Ppid",
    }
}

/// Validates metadata as APM Server does.
pub fn validate_metadata_root(m: &MetadataRoot<'_>) -> VResult {
    nested(&m.metadata, "metadata", validate_metadata)?;
    required(&m.metadata, "metadata")
}

fn validate_metadata(m: &Metadata<'_>) -> VResult {
    labels(&m.labels.0, "labels")?;
    nested(&m.service, "service", |s| {
        nested(&s.agent, "agent", |a| {
            max_len(&a.activation_method, 1024, "activation_method")?;
            max_len(&a.ephemeral_id, 1024, "ephemeral_id")?;
            max_len(&a.name, 1024, "name")?;
            min_len1(&a.name, "name")?;
            required(&a.name, "name")?;
            max_len(&a.version, 1024, "version")?;
            required(&a.version, "version")
        })?;
        required(&s.agent, "agent")?;
        max_len(&s.environment, 1024, "environment")?;
        nested(&s.framework, "framework", name_version_max)?;
        nested(&s.language, "language", |l| {
            max_len(&l.name, 1024, "name")?;
            required(&l.name, "name")?;
            max_len(&l.version, 1024, "version")
        })?;
        max_len(&s.name, 1024, "name")?;
        min_len1(&s.name, "name")?;
        alnum_ext(&s.name, "name")?;
        required(&s.name, "name")?;
        nested(&s.node, "node", |n| {
            max_len(&n.configured_name, 1024, "configured_name")
        })?;
        nested(&s.runtime, "runtime", |r| {
            max_len(&r.name, 1024, "name")?;
            required(&r.name, "name")?;
            max_len(&r.version, 1024, "version")?;
            required(&r.version, "version")
        })?;
        max_len(&s.version, 1024, "version")
    })?;
    required(&m.service, "service")?;
    nested(&m.cloud, "cloud", |c| {
        nested(&c.account, "account", id_name_max)?;
        max_len(&c.availability_zone, 1024, "availability_zone")?;
        nested(&c.instance, "instance", id_name_max)?;
        nested(&c.machine, "machine", |m| max_len(&m.r#type, 1024, "type"))?;
        nested(&c.project, "project", id_name_max)?;
        max_len(&c.provider, 1024, "provider")?;
        required(&c.provider, "provider")?;
        max_len(&c.region, 1024, "region")?;
        nested(&c.service, "service", |s| max_len(&s.name, 1024, "name"))
    })?;
    nested(&m.system, "system", |s| {
        max_len(&s.architecture, 1024, "architecture")?;
        max_len(&s.configured_hostname, 1024, "configured_hostname")?;
        nested(&s.container, "container", |c| max_len(&c.id, 1024, "id"))?;
        max_len(&s.detected_hostname, 1024, "detected_hostname")?;
        max_len(&s.hostname, 1024, "hostname")?;
        nested(&s.kubernetes, "kubernetes", |k| {
            max_len(&k.namespace, 1024, "namespace")?;
            nested(&k.node, "node", |n| max_len(&n.name, 1024, "name"))?;
            nested(&k.pod, "pod", |p| {
                max_len(&p.name, 1024, "name")?;
                max_len(&p.uid, 1024, "uid")
            })
        })?;
        max_len(&s.platform, 1024, "platform")?;
        max_len(&s.host_id, 1024, "host_id")
    })?;
    nested(&m.user, "user", validate_user)?;
    nested(&m.network, "network", |n| {
        nested(&n.connection, "connection", |c| {
            max_len(&c.r#type, 1024, "type")
        })
    })?;
    nested(&m.process, "process", |p| {
        max_len(&p.title, 1024, "title")?;
        required(&p.pid, "pid")
    })
}

fn name_version_max(v: &NameVersionIn<'_>) -> VResult {
    max_len(&v.name, 1024, "name")?;
    max_len(&v.version, 1024, "version")
}

fn id_name_max(v: &IdName<'_>) -> VResult {
    max_len(&v.id, 1024, "id")?;
    max_len(&v.name, 1024, "name")
}

fn validate_user(u: &User<'_>) -> VResult {
    max_len(&u.domain, 1024, "domain")?;
    string_or_int(&u.id, "id", 1024, false)?;
    max_len(&u.email, 1024, "email")?;
    max_len(&u.username, 1024, "username")
}

/// Maps validated metadata onto a base event.
pub fn map_metadata<'a>(m: &Metadata<'a>, out: &mut ApmEvent<'a>) {
    let c = &m.cloud;
    if c.is_set() {
        let cloud = out.cloud.get_or_insert_with(Default::default);
        set(&mut cloud.account_id, &c.account.id);
        set(&mut cloud.account_name, &c.account.name);
        set(&mut cloud.availability_zone, &c.availability_zone);
        set(&mut cloud.instance_id, &c.instance.id);
        set(&mut cloud.instance_name, &c.instance.name);
        set(&mut cloud.machine_type, &c.machine.r#type);
        set(&mut cloud.project_id, &c.project.id);
        set(&mut cloud.project_name, &c.project.name);
        set(&mut cloud.provider, &c.provider);
        set(&mut cloud.region, &c.region);
        set(&mut cloud.service_name, &c.service.name);
    }
    global_labels(&m.labels.0, out);
    let p = &m.process;
    if p.is_set() {
        let proc_ = out.process.get_or_insert_with(Default::default);
        if !p.argv.is_empty() {
            proc_.argv = p.argv.iter().map(|s| s.0.clone()).collect();
        }
        if let Some(pid) = p.pid {
            proc_.pid = pid.0 as u32;
        }
        if let Some(ppid) = p.ppid {
            proc_.ppid = ppid.0 as u32;
        }
        set(&mut proc_.title, &p.title);
    }
    let s = &m.service;
    let a = &s.agent;
    set(&mut out.agent.activation_method, &a.activation_method);
    set(&mut out.agent.ephemeral_id, &a.ephemeral_id);
    set(&mut out.agent.name, &a.name);
    set(&mut out.agent.version, &a.version);
    set(&mut out.service.environment, &s.environment);
    name_version(&mut out.service.framework, &s.framework);
    name_version(&mut out.service.language, &s.language);
    set(&mut out.service.name, &s.name);
    set(&mut out.service.node_name, &s.node.configured_name);
    name_version(&mut out.service.runtime, &s.runtime);
    set(&mut out.service.version, &s.version);

    let sys = &m.system;
    if sys.architecture.is_some()
        || sys.configured_hostname.is_some()
        || sys.detected_hostname.is_some()
        || sys.host_id.is_some()
        || sys.hostname.is_some()
        || sys.platform.is_some()
    {
        let host = out.host.get_or_insert_with(Default::default);
        set(&mut host.architecture, &sys.architecture);
        set(&mut host.name, &sys.configured_hostname);
        set(&mut host.hostname, &sys.detected_hostname);
        set(&mut host.id, &sys.host_id);
        if sys.configured_hostname.is_none() && sys.detected_hostname.is_none() {
            set(&mut host.hostname, &sys.hostname);
        }
        set(&mut host.os_platform, &sys.platform);
    }
    set(&mut out.container_id, &sys.container.id);
    let k = &sys.kubernetes;
    if k.is_set() {
        let kube = out.kubernetes.get_or_insert_with(Default::default);
        set(&mut kube.namespace, &k.namespace);
        set(&mut kube.node_name, &k.node.name);
        set(&mut kube.pod_name, &k.pod.name);
        set(&mut kube.pod_uid, &k.pod.uid);
    }
    let u = &m.user;
    if u.is_set() {
        let user = out.user.get_or_insert_with(Default::default);
        set(&mut user.domain, &u.domain);
        if let Some(id) = &u.id {
            user.id = Cow::Owned(any_to_string(&id.0));
        }
        set(&mut user.email, &u.email);
        set(&mut user.name, &u.username);
    }
    if let Some(t) = &m.network.connection.r#type {
        out.network
            .get_or_insert_with(Default::default)
            .connection_type = t.0.clone();
    }
}

fn name_version<'a>(out: &mut Option<NameVersion<'a>>, v: &NameVersionIn<'a>) {
    if v.is_set() {
        let nv = out.get_or_insert_with(Default::default);
        set(&mut nv.name, &v.name);
        set(&mut nv.version, &v.version);
    }
}

// ---------------------------------------------------------------------------------------------
// Event context shared by transactions and errors.

json_struct! {
    /// `context` of transactions and errors.
    pub struct Context<'a>: "v2.context" {
        /// Free-form custom context.
        custom: JObject = "custom" / "Custom",
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Per-event service information.
        service: ContextService<'a> = "service" / "Service",
        /// Cloud origin.
        cloud: ContextCloud<'a> = "cloud" / "Cloud",
        /// Per-event user.
        user: User<'a> = "user" / "User",
        /// RUM page.
        page: ContextPage<'a> = "page" / "Page",
        /// HTTP request.
        request: ContextRequest<'a> = "request" / "Request",
        /// Messaging.
        message: ContextMessage<'a> = "message" / "Message",
        /// HTTP response.
        response: ContextResponse<'a> = "response" / "Response",
    }
}

json_struct! {
    /// `context.service`
    pub struct ContextService<'a>: "v2.contextService" {
        /// Agent.
        agent: ContextServiceAgent<'a> = "agent" / "Agent",
        /// Environment.
        environment: Option<JStr<'a>> = "environment" / "Environment",
        /// Framework.
        framework: NameVersionIn<'a> = "framework" / "Framework",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Language.
        language: NameVersionIn<'a> = "language" / "Language",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Node.
        node: ServiceNode<'a> = "node" / "Node",
        /// Origin.
        origin: ServiceOriginIn<'a> = "origin" / "Origin",
        /// Runtime.
        runtime: NameVersionIn<'a> = "runtime" / "Runtime",
        /// Target.
        target: ServiceTargetIn<'a> = "target" / "Target",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.agent`
    pub struct ContextServiceAgent<'a>: "v2.contextServiceAgent" {
        /// Ephemeral id.
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" / "EphemeralID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.origin`
    pub struct ServiceOriginIn<'a>: "v2.contextServiceOrigin" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `context.service.target`
    pub struct ServiceTargetIn<'a>: "v2.contextServiceTarget" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `context.cloud`
    pub struct ContextCloud<'a>: "v2.contextCloud" {
        /// Origin.
        origin: ContextCloudOrigin<'a> = "origin" / "Origin",
    }
}

json_struct! {
    /// `context.cloud.origin`
    pub struct ContextCloudOrigin<'a>: "v2.contextCloudOrigin" {
        /// Account.
        account: IdOnly<'a> = "account" / "Account",
        /// Provider.
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// Region.
        region: Option<JStr<'a>> = "region" / "Region",
        /// Service.
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// `context.page`
    pub struct ContextPage<'a>: "v2.contextPage" {
        /// Referer.
        referer: Option<JStr<'a>> = "referer" / "Referer",
        /// Page URL.
        url: Option<JStr<'a>> = "url" / "URL",
    }
}

json_struct! {
    /// `context.request`
    pub struct ContextRequest<'a>: "v2.contextRequest" {
        /// Cookies.
        cookies: JObject = "cookies" / "Cookies",
        /// Environment.
        env: JObject = "env" / "Env",
        /// Body: a string or an object.
        body: Option<JAny> = "body" / "Body",
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// URL.
        url: ContextRequestUrl<'a> = "url" / "URL",
        /// HTTP version.
        http_version: Option<JStr<'a>> = "http_version" / "HTTPVersion",
        /// Method.
        method: Option<JStr<'a>> = "method" / "Method",
        /// Socket.
        socket: ContextRequestSocket<'a> = "socket" / "Socket",
    }
}

json_struct! {
    /// `context.request.url`
    pub struct ContextRequestUrl<'a>: "v2.contextRequestURL" {
        /// Port: a string or an integer.
        port: Option<JAny> = "port" / "Port",
        /// Full URL.
        full: Option<JStr<'a>> = "full" / "Full",
        /// Fragment.
        hash: Option<JStr<'a>> = "hash" / "Hash",
        /// Host name.
        hostname: Option<JStr<'a>> = "hostname" / "Hostname",
        /// Path.
        pathname: Option<JStr<'a>> = "pathname" / "Path",
        /// Protocol.
        protocol: Option<JStr<'a>> = "protocol" / "Protocol",
        /// Raw URL.
        raw: Option<JStr<'a>> = "raw" / "Raw",
        /// Query string.
        search: Option<JStr<'a>> = "search" / "Search",
    }
}

json_struct! {
    /// `context.request.socket`
    pub struct ContextRequestSocket<'a>: "v2.contextRequestSocket" {
        /// Remote address.
        remote_address: Option<JStr<'a>> = "remote_address" / "RemoteAddress",
        /// Deprecated.
        encrypted: Option<JBool> = "encrypted" / "Encrypted",
    }
}

json_struct! {
    /// `context.message`
    pub struct ContextMessage<'a>: "v2.contextMessage" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Body.
        body: Option<JStr<'a>> = "body" / "Body",
        /// Queue.
        queue: NameOnly<'a> = "queue" / "Queue",
        /// Routing key.
        routing_key: Option<JStr<'a>> = "routing_key" / "RoutingKey",
        /// Age.
        age: MessageAge<'a> = "age" / "Age",
    }
}

json_struct! {
    /// `context.message.age`
    pub struct MessageAge<'a>: "v2.contextMessageAge" {
        /// Milliseconds.
        ms: Option<JInt> = "ms" / "Milliseconds",
    }
}

json_struct! {
    /// `context.response`
    pub struct ContextResponse<'a>: "v2.contextResponse" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
        /// Transfer size.
        transfer_size: Option<JInt> = "transfer_size" / "TransferSize",
        /// Decoded body size.
        decoded_body_size: Option<JInt> = "decoded_body_size" / "DecodedBodySize",
        /// Encoded body size.
        encoded_body_size: Option<JInt> = "encoded_body_size" / "EncodedBodySize",
        /// Finished.
        finished: Option<JBool> = "finished" / "Finished",
        /// Headers sent.
        headers_sent: Option<JBool> = "headers_sent" / "HeadersSent",
    }
}

fn validate_context(c: &Context<'_>) -> VResult {
    labels(&c.tags.0, "tags")?;
    nested(&c.service, "service", validate_context_service)?;
    nested(&c.cloud, "cloud", |_| Ok(()))?;
    nested(&c.user, "user", validate_user)?;
    nested(&c.page, "page", |_| Ok(()))?;
    nested(&c.request, "request", |r| {
        if let Some(JAny(b)) = &r.body {
            if !matches!(
                b,
                serde_json::Value::String(_)
                    | serde_json::Value::Object(_)
                    | serde_json::Value::Null
            ) {
                return Err("'body': validation rule 'inputTypes(string;object)' violated ".into());
            }
        }
        nested(&r.url, "url", |u| {
            string_or_int(&u.port, "port", 1024, true)?;
            max_len(&u.full, 1024, "full")?;
            max_len(&u.hash, 1024, "hash")?;
            max_len(&u.hostname, 1024, "hostname")?;
            max_len(&u.pathname, 1024, "pathname")?;
            max_len(&u.protocol, 1024, "protocol")?;
            max_len(&u.raw, 1024, "raw")?;
            max_len(&u.search, 1024, "search")
        })?;
        max_len(&r.http_version, 1024, "http_version")?;
        max_len(&r.method, 1024, "method")?;
        required(&r.method, "method")
    })?;
    nested(&c.message, "message", validate_message)?;
    Ok(())
}

fn validate_message(m: &ContextMessage<'_>) -> VResult {
    nested(&m.queue, "queue", |q| max_len(&q.name, 1024, "name"))
}

fn validate_context_service(s: &ContextService<'_>) -> VResult {
    nested(&s.agent, "agent", |a| {
        max_len(&a.ephemeral_id, 1024, "ephemeral_id")?;
        max_len(&a.name, 1024, "name")?;
        max_len(&a.version, 1024, "version")
    })?;
    max_len(&s.environment, 1024, "environment")?;
    nested(&s.framework, "framework", name_version_max)?;
    nested(&s.language, "language", name_version_max)?;
    max_len(&s.name, 1024, "name")?;
    alnum_ext(&s.name, "name")?;
    nested(&s.node, "node", |n| {
        max_len(&n.configured_name, 1024, "configured_name")
    })?;
    nested(&s.runtime, "runtime", name_version_max)?;
    nested(&s.target, "target", |t| {
        any_of(t.r#type.is_some() || t.name.is_some(), "type;name")
    })?;
    max_len(&s.version, 1024, "version")
}

fn map_context_service<'a>(s: &ContextService<'a>, out: &mut Service<'a>) {
    set(&mut out.environment, &s.environment);
    name_version(&mut out.framework, &s.framework);
    name_version(&mut out.language, &s.language);
    if let Some(n) = &s.name {
        out.name = n.0.clone();
        out.version = s.version.as_ref().map(|v| v.0.clone()).unwrap_or_default();
    }
    set(&mut out.node_name, &s.node.configured_name);
    name_version(&mut out.runtime, &s.runtime);
    if s.origin.is_set() {
        out.origin = Some(ServiceOrigin {
            id: st(&s.origin.id),
            name: st(&s.origin.name),
            version: st(&s.origin.version),
        });
    }
    if s.target.is_set() {
        out.target = Some(ServiceTarget {
            r#type: st(&s.target.r#type),
            name: st(&s.target.name),
        });
    }
}

fn map_context_agent<'a>(a: &ContextServiceAgent<'a>, out: &mut Agent<'a>) {
    set(&mut out.name, &a.name);
    set(&mut out.version, &a.version);
    set(&mut out.ephemeral_id, &a.ephemeral_id);
}

fn overwrite_user<'a>(u: &User<'a>, out: &mut ApmEvent<'a>) {
    if u.domain.is_none() && u.id.is_none() && u.email.is_none() && u.username.is_none() {
        return;
    }
    out.user = Some(super::event::User {
        domain: st(&u.domain),
        id: u
            .id
            .as_ref()
            .map(|i| Cow::Owned(any_to_string(&i.0)))
            .unwrap_or_default(),
        email: st(&u.email),
        name: st(&u.username),
    });
}

fn map_request<'a>(r: &ContextRequest<'a>, out: &mut HttpRequest<'a>) {
    set(&mut out.method, &r.method);
    if r.env.is_set() {
        out.env = Some(r.env.0.clone());
    }
    if let Some(b) = &r.body {
        out.body = normalize_body(b.0.clone());
    }
    if r.cookies.is_set() {
        out.cookies = Some(r.cookies.0.clone());
    }
    if r.headers.set {
        out.headers = r.headers.values.clone();
    }
}

fn map_request_url<'a>(u: &ContextRequestUrl<'a>, out: &mut Url<'a>) {
    set(&mut out.original, &u.raw);
    set(&mut out.full, &u.full);
    set(&mut out.domain, &u.hostname);
    set(&mut out.path, &u.pathname);
    set(&mut out.query, &u.search);
    set(&mut out.fragment, &u.hash);
    if let Some(p) = &u.protocol {
        out.scheme = match &p.0 {
            Cow::Borrowed(s) => Cow::Borrowed(s.strip_suffix(':').unwrap_or(s)),
            Cow::Owned(s) => Cow::Owned(s.strip_suffix(':').unwrap_or(s).to_owned()),
        };
    }
    if let Some(JAny(p)) = &u.port {
        let port = match p {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        };
        if let Some(p) = port {
            out.port = p as u32;
        }
    }
}

fn map_response<'a>(r: &ContextResponse<'a>, out: &mut HttpResponse<'a>) {
    out.finished = r.finished.map(|b| b.0);
    if r.headers.set {
        out.headers = r.headers.values.clone();
    }
    out.headers_sent = r.headers_sent.map(|b| b.0);
    if let Some(c) = r.status_code {
        out.status_code = c.0 as u32;
    }
    out.transfer_size = r.transfer_size.map(|v| v.0 as u64);
    out.encoded_body_size = r.encoded_body_size.map(|v| v.0 as u64);
    out.decoded_body_size = r.decoded_body_size.map(|v| v.0 as u64);
}

fn map_message<'a>(m: &ContextMessage<'a>) -> Message<'a> {
    Message {
        queue_name: st(&m.queue.name),
        routing_key: st(&m.routing_key),
        body: st(&m.body),
        headers: if m.headers.set {
            m.headers.values.clone()
        } else {
            Vec::new()
        },
        age_ms: m.age.ms.map(|v| v.0 as u64),
    }
}

/// Page URL, referer, request, response and URL of transactions and errors.
fn map_http_context<'a>(c: &Context<'a>, out: &mut ApmEvent<'a>, response_first: bool) {
    let req = |out: &mut ApmEvent<'a>| {
        if c.request.is_set() {
            let http = out.http_mut();
            let mut r = HttpRequest::default();
            map_request(&c.request, &mut r);
            http.request = Some(r);
            set(&mut http.version, &c.request.http_version);
        }
    };
    let resp = |out: &mut ApmEvent<'a>| {
        if c.response.is_set() {
            let mut r = HttpResponse::default();
            map_response(&c.response, &mut r);
            out.http_mut().response = Some(r);
        }
    };
    let url = |out: &mut ApmEvent<'a>| {
        if c.request.url.is_set() {
            map_request_url(&c.request.url, out.url.get_or_insert_with(Default::default));
        }
    };
    if response_first {
        req(out);
        resp(out);
        url(out);
    } else {
        req(out);
        url(out);
        resp(out);
    }
    if c.page.is_set() {
        if let Some(u) = &c.page.url {
            if !c.request.url.is_set() {
                out.url = Some(parse_url(u.0.clone()));
            }
        }
        if let Some(r) = &c.page.referer {
            let req = out.http_mut().request.get_or_insert_with(Default::default);
            if req.referrer.is_empty() {
                req.referrer = r.0.clone();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stack traces.

json_struct! {
    /// One stack frame.
    pub struct Frame<'a>: "v2.stacktraceFrame" {
        /// Local variables.
        vars: JObject = "vars" / "Vars",
        /// File name.
        filename: Option<JStr<'a>> = "filename" / "Filename",
        /// Absolute path.
        abs_path: Option<JStr<'a>> = "abs_path" / "AbsPath",
        /// Class name.
        classname: Option<JStr<'a>> = "classname" / "Classname",
        /// Context line.
        context_line: Option<JStr<'a>> = "context_line" / "ContextLine",
        /// Function.
        function: Option<JStr<'a>> = "function" / "Function",
        /// Module.
        module: Option<JStr<'a>> = "module" / "Module",
        /// Lines after.
        post_context: JVec<JStr<'a>> = "post_context" / "PostContext",
        /// Lines before.
        pre_context: JVec<JStr<'a>> = "pre_context" / "PreContext",
        /// Line number.
        lineno: Option<JInt> = "lineno" / "LineNumber",
        /// Column number.
        colno: Option<JInt> = "colno" / "ColumnNumber",
        /// Library frame.
        library_frame: Option<JBool> = "library_frame" / "LibraryFrame",
    }
}

fn validate_frames(frames: &[Frame<'_>]) -> VResult {
    each(frames, "stacktrace", |f| {
        any_of(
            f.classname.is_some() || f.filename.is_some(),
            "classname;filename",
        )
    })
}

fn map_frames<'a>(frames: &[Frame<'a>]) -> Vec<super::event::Frame<'a>> {
    frames
        .iter()
        .map(|f| super::event::Frame {
            abs_path: st(&f.abs_path),
            filename: st(&f.filename),
            classname: st(&f.classname),
            function: st(&f.function),
            module: st(&f.module),
            context_line: st(&f.context_line),
            lineno: f.lineno.map(|v| v.0 as u32),
            colno: f.colno.map(|v| v.0 as u32),
            pre_context: f.pre_context.iter().map(|s| s.0.clone()).collect(),
            post_context: f.post_context.iter().map(|s| s.0.clone()).collect(),
            vars: if f.vars.is_set() {
                Some(f.vars.0.clone())
            } else {
                None
            },
            library_frame: f.library_frame.is_some_and(|b| b.0),
            exclude_from_grouping: false,
            original_library_frame: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors.

json_struct! {
    /// `{"error": {...}}`
    pub struct ErrorRoot<'a>: "v2.errorRoot" {
        /// The error.
        error: ErrorEvent<'a> = "error" / "Error",
    }
}

json_struct! {
    /// An error or a logged error message.
    pub struct ErrorEvent<'a>: "v2.errorEvent" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// Log.
        log: ErrorLogIn<'a> = "log" / "Log",
        /// Culprit.
        culprit: Option<JStr<'a>> = "culprit" / "Culprit",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Transaction id.
        transaction_id: Option<JStr<'a>> = "transaction_id" / "TransactionID",
        /// Exception.
        exception: ExceptionIn<'a> = "exception" / "Exception",
        /// Transaction reference.
        transaction: ErrorTransactionRef<'a> = "transaction" / "Transaction",
        /// Context.
        context: Context<'a> = "context" / "Context",
    }
}

json_struct! {
    /// `error.exception`
    pub struct ExceptionIn<'a>: "v2.errorException" {
        /// Attributes.
        attributes: JObject = "attributes" / "Attributes",
        /// Code: a string or an integer.
        code: Option<JAny> = "code" / "Code",
        /// Causes.
        cause: JVec<ExceptionIn<'a>> = "cause" / "Cause",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
        /// Message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// Module.
        module: Option<JStr<'a>> = "module" / "Module",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Handled.
        handled: Option<JBool> = "handled" / "Handled",
    }
}

json_struct! {
    /// `error.log`
    pub struct ErrorLogIn<'a>: "v2.errorLog" {
        /// Level.
        level: Option<JStr<'a>> = "level" / "Level",
        /// Logger name.
        logger_name: Option<JStr<'a>> = "logger_name" / "LoggerName",
        /// Message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// Parameterised message.
        param_message: Option<JStr<'a>> = "param_message" / "ParamMessage",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
    }
}

json_struct! {
    /// `error.transaction`
    pub struct ErrorTransactionRef<'a>: "v2.errorTransactionRef" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Sampled.
        sampled: Option<JBool> = "sampled" / "Sampled",
    }
}

/// Validates an error as APM Server does.
pub fn validate_error_root(r: &ErrorRoot<'_>) -> VResult {
    nested(&r.error, "error", |e| {
        any_of(e.exception.is_set() || e.log.is_set(), "exception;log")?;
        nested(&e.log, "log", |l| {
            max_len(&l.level, 1024, "level")?;
            max_len(&l.logger_name, 1024, "logger_name")?;
            required(&l.message, "message")?;
            max_len(&l.param_message, 1024, "param_message")?;
            validate_frames(&l.stacktrace)
        })?;
        max_len(&e.culprit, 1024, "culprit")?;
        max_len(&e.id, 1024, "id")?;
        required(&e.id, "id")?;
        max_len(&e.parent_id, 1024, "parent_id")?;
        if e.parent_id.is_none() {
            if e.transaction_id.is_some() {
                return Err("'parent_id' required when 'transaction_id' is set".into());
            }
            if e.trace_id.is_some() {
                return Err("'parent_id' required when 'trace_id' is set".into());
            }
        }
        max_len(&e.trace_id, 1024, "trace_id")?;
        if e.trace_id.is_none() {
            if e.transaction_id.is_some() {
                return Err("'trace_id' required when 'transaction_id' is set".into());
            }
            if e.parent_id.is_some() {
                return Err("'trace_id' required when 'parent_id' is set".into());
            }
        }
        max_len(&e.transaction_id, 1024, "transaction_id")?;
        nested(&e.exception, "exception", validate_exception)?;
        nested(&e.transaction, "transaction", |t| {
            max_len(&t.name, 1024, "name")?;
            max_len(&t.r#type, 1024, "type")
        })?;
        nested(&e.context, "context", validate_context)
    })?;
    required(&r.error, "error")
}

fn validate_exception(e: &ExceptionIn<'_>) -> VResult {
    any_of(e.message.is_some() || e.r#type.is_some(), "message;type")?;
    string_or_int(&e.code, "code", 1024, false)?;
    each(&e.cause, "cause", validate_exception)?;
    validate_frames(&e.stacktrace)?;
    max_len(&e.module, 1024, "module")?;
    max_len(&e.r#type, 1024, "type")
}

fn map_exception<'a>(e: &ExceptionIn<'a>) -> Exception<'a> {
    Exception {
        attributes: if e.attributes.is_set() {
            Some(e.attributes.0.clone())
        } else {
            None
        },
        code: e
            .code
            .as_ref()
            .map(|c| Cow::Owned(any_to_string(&c.0)))
            .unwrap_or_default(),
        cause: e.cause.iter().map(map_exception).collect(),
        handled: e.handled.map(|h| h.0),
        message: st(&e.message),
        module: st(&e.module),
        stacktrace: map_frames(&e.stacktrace),
        r#type: st(&e.r#type),
    }
}

/// Maps a validated error onto `out` (a clone of the base event).
pub fn map_error<'a>(e: &ErrorEvent<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Error;
    let mut err = super::event::Error::default();
    map_context_service(&e.context.service, &mut out.service);
    map_context_agent(&e.context.service.agent, &mut out.agent);
    overwrite_user(&e.context.user, out);
    user_agent_from_headers(&e.context.request.headers, out);
    map_client(
        e.context.request.socket.remote_address.as_ref(),
        &e.context.request.headers,
        out,
    );
    if e.context.is_set() {
        merge_labels(&e.context.tags.0, &mut out.labels);
        map_http_context(&e.context, out, true);
        if e.context.custom.is_set() {
            err.custom = Some(e.context.custom.0.clone());
        }
    }
    set(&mut err.culprit, &e.culprit);
    if e.exception.is_set() {
        err.exception = Some(map_exception(&e.exception));
    }
    set(&mut err.id, &e.id);
    if e.log.is_set() {
        let l = &e.log;
        err.log = Some(ErrorLog {
            level: st(&l.level),
            logger_name: st(&l.logger_name),
            message: st(&l.message),
            param_message: st(&l.param_message),
            stacktrace: map_frames(&l.stacktrace),
        });
    }
    set(&mut out.parent_id, &e.parent_id);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = e.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &e.trace_id);
    if e.transaction_id.is_some() || e.transaction.is_set() {
        let tx = out.transaction_mut();
        if let Some(id) = &e.transaction_id {
            tx.id = id.0.clone();
        }
        tx.sampled = e.transaction.sampled.is_some_and(|b| b.0);
        set(&mut tx.name, &e.transaction.name);
        set(&mut tx.r#type, &e.transaction.r#type);
        if let Some(id) = &e.transaction_id {
            out.span_mut().id = id.0.clone();
        }
    }
    out.error = Some(err);
}

// ---------------------------------------------------------------------------------------------
// Transactions.

json_struct! {
    /// `{"transaction": {...}}`
    pub struct TransactionRoot<'a>: "v2.transactionRoot" {
        /// The transaction.
        transaction: TransactionIn<'a> = "transaction" / "Transaction",
    }
}

json_struct! {
    /// A transaction.
    pub struct TransactionIn<'a>: "v2.transaction" {
        /// Marks (RUM).
        marks: JMap<'a, JMap<'a, JFloat>> = "marks" / "Marks",
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// OpenTelemetry bridge data.
        otel: Otel<'a> = "otel" / "OTel",
        /// Span links.
        links: JVec<SpanLinkIn<'a>> = "links" / "Links",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Result.
        result: Option<JStr<'a>> = "result" / "Result",
        /// Dropped span statistics.
        dropped_spans_stats: JVec<DroppedSpanStats<'a>> = "dropped_spans_stats" / "DroppedSpanStats",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Function as a service.
        faas: FaasIn<'a> = "faas" / "FAAS",
        /// Session (RUM).
        session: SessionIn<'a> = "session" / "Session",
        /// Context.
        context: Context<'a> = "context" / "Context",
        /// User experience (RUM).
        experience: Experience<'a> = "experience" / "UserExperience",
        /// Span count.
        span_count: SpanCountIn<'a> = "span_count" / "SpanCount",
        /// Sample rate.
        sample_rate: Option<JFloat> = "sample_rate" / "SampleRate",
        /// Duration in milliseconds.
        duration: Option<JFloat> = "duration" / "Duration",
        /// Sampled.
        sampled: Option<JBool> = "sampled" / "Sampled",
    }
}

json_struct! {
    /// `otel`
    pub struct Otel<'a>: "v2.otel" {
        /// Unmapped attributes.
        attributes: JObject = "attributes" / "Attributes",
        /// Span kind.
        span_kind: Option<JStr<'a>> = "span_kind" / "SpanKind",
    }
}

json_struct! {
    /// A span link.
    pub struct SpanLinkIn<'a>: "v2.spanLink" {
        /// Linked span id.
        span_id: Option<JStr<'a>> = "span_id" / "SpanID",
        /// Linked trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
    }
}

json_struct! {
    /// `dropped_spans_stats[]`
    pub struct DroppedSpanStats<'a>: "v2.transactionDroppedSpanStats" {
        /// Destination resource.
        destination_service_resource: Option<JStr<'a>> = "destination_service_resource" / "DestinationServiceResource",
        /// Target type.
        service_target_type: Option<JStr<'a>> = "service_target_type" / "ServiceTargetType",
        /// Target name.
        service_target_name: Option<JStr<'a>> = "service_target_name" / "ServiceTargetName",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Duration.
        duration: DroppedDuration<'a> = "duration" / "Duration",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration`
    pub struct DroppedDuration<'a>: "v2.transactionDroppedSpansDuration" {
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Sum.
        sum: DroppedSum<'a> = "sum" / "Sum",
    }
}

json_struct! {
    /// `dropped_spans_stats[].duration.sum`
    pub struct DroppedSum<'a>: "v2.transactionDroppedSpansDurationSum" {
        /// Microseconds.
        us: Option<JInt> = "us" / "Us",
    }
}

json_struct! {
    /// `faas`
    pub struct FaasIn<'a>: "v2.faas" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Execution.
        execution: Option<JStr<'a>> = "execution" / "Execution",
        /// Trigger.
        trigger: Trigger<'a> = "trigger" / "Trigger",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
        /// Cold start.
        coldstart: Option<JBool> = "coldstart" / "Coldstart",
    }
}

json_struct! {
    /// `faas.trigger`
    pub struct Trigger<'a>: "v2.trigger" {
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Request id.
        request_id: Option<JStr<'a>> = "request_id" / "RequestID",
    }
}

json_struct! {
    /// `session`
    pub struct SessionIn<'a>: "v2.transactionSession" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Sequence.
        sequence: Option<JInt> = "sequence" / "Sequence",
    }
}

json_struct! {
    /// `experience`
    pub struct Experience<'a>: "v2.transactionUserExperience" {
        /// Cumulative layout shift.
        cls: Option<JFloat> = "cls" / "CumulativeLayoutShift",
        /// First input delay.
        fid: Option<JFloat> = "fid" / "FirstInputDelay",
        /// Long tasks.
        longtask: Longtask<'a> = "longtask" / "Longtask",
        /// Total blocking time.
        tbt: Option<JFloat> = "tbt" / "TotalBlockingTime",
    }
}

json_struct! {
    /// `experience.longtask`
    pub struct Longtask<'a>: "v2.longtaskMetrics" {
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Max.
        max: Option<JFloat> = "max" / "Max",
        /// Sum.
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `span_count`
    pub struct SpanCountIn<'a>: "v2.transactionSpanCount" {
        /// Dropped.
        dropped: Option<JInt> = "dropped" / "Dropped",
        /// Started.
        started: Option<JInt> = "started" / "Started",
    }
}

fn validate_links(l: &[SpanLinkIn<'_>]) -> VResult {
    each(l, "links", |l| {
        max_len(&l.span_id, 1024, "span_id")?;
        required(&l.span_id, "span_id")?;
        max_len(&l.trace_id, 1024, "trace_id")?;
        required(&l.trace_id, "trace_id")
    })
}

/// Validates a transaction as APM Server does.
pub fn validate_transaction_root(r: &TransactionRoot<'_>) -> VResult {
    nested(&r.transaction, "transaction", |t| {
        nested(&t.otel, "otel", |_| Ok(()))?;
        validate_links(&t.links)?;
        max_len(&t.trace_id, 1024, "trace_id")?;
        required(&t.trace_id, "trace_id")?;
        max_len(&t.id, 1024, "id")?;
        required(&t.id, "id")?;
        max_len(&t.parent_id, 1024, "parent_id")?;
        max_len(&t.name, 1024, "name")?;
        max_len(&t.r#type, 1024, "type")?;
        required(&t.r#type, "type")?;
        max_len(&t.result, 1024, "result")?;
        each(&t.dropped_spans_stats, "dropped_spans_stats", |d| {
            max_len(
                &d.destination_service_resource,
                1024,
                "destination_service_resource",
            )?;
            max_len(&d.service_target_type, 512, "service_target_type")?;
            max_len(&d.service_target_name, 512, "service_target_name")?;
            outcome(&d.outcome, "outcome")?;
            nested(&d.duration, "duration", |d| {
                min_f(d.count.map(|c| c.0 as f64), 1.0, "count", "1")?;
                nested(&d.sum, "sum", |s| {
                    min_f(s.us.map(|c| c.0 as f64), 0.0, "us", "0")
                })
            })
        })?;
        outcome(&t.outcome, "outcome")?;
        nested(&t.faas, "faas", |_| Ok(()))?;
        nested(&t.session, "session", |s| {
            max_len(&s.id, 1024, "id")?;
            required(&s.id, "id")?;
            min_f(s.sequence.map(|c| c.0 as f64), 1.0, "sequence", "1")
        })?;
        nested(&t.context, "context", validate_context)?;
        nested(&t.experience, "experience", |x| {
            min_f(x.cls.map(|v| v.0), 0.0, "cls", "0")?;
            min_f(x.fid.map(|v| v.0), 0.0, "fid", "0")?;
            nested(&x.longtask, "longtask", |l| {
                min_f(l.count.map(|v| v.0 as f64), 0.0, "count", "0")?;
                required(&l.count, "count")?;
                min_f(l.max.map(|v| v.0), 0.0, "max", "0")?;
                required(&l.max, "max")?;
                min_f(l.sum.map(|v| v.0), 0.0, "sum", "0")?;
                required(&l.sum, "sum")
            })?;
            min_f(x.tbt.map(|v| v.0), 0.0, "tbt", "0")
        })?;
        nested(&t.span_count, "span_count", |s| {
            required(&s.started, "started")
        })?;
        required(&t.span_count, "span_count")?;
        min_f(t.duration.map(|v| v.0), 0.0, "duration", "0")?;
        required(&t.duration, "duration")
    })?;
    required(&r.transaction, "transaction")
}

fn map_faas<'a>(f: &FaasIn<'a>, out: &mut ApmEvent<'a>) {
    if !f.is_set() {
        return;
    }
    let faas = out.faas.get_or_insert_with(Default::default);
    set(&mut faas.id, &f.id);
    if let Some(c) = f.coldstart {
        faas.coldstart = Some(c.0);
    }
    set(&mut faas.execution, &f.execution);
    set(&mut faas.trigger_type, &f.trigger.r#type);
    set(&mut faas.trigger_request_id, &f.trigger.request_id);
    set(&mut faas.name, &f.name);
    set(&mut faas.version, &f.version);
}

/// Maps a validated transaction onto `out` (a clone of the base event).
pub fn map_transaction<'a>(t: &TransactionIn<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Transaction;
    let mut tx = super::event::Transaction::default();
    map_context_service(&t.context.service, &mut out.service);
    map_context_agent(&t.context.service.agent, &mut out.agent);
    overwrite_user(&t.context.user, out);
    user_agent_from_headers(&t.context.request.headers, out);
    map_client(
        t.context.request.socket.remote_address.as_ref(),
        &t.context.request.headers,
        out,
    );
    map_faas(&t.faas, out);
    if t.context.cloud.is_set() {
        let o = &t.context.cloud.origin;
        out.cloud.get_or_insert_with(Default::default).origin = Some(CloudOrigin {
            account_id: st(&o.account.id),
            provider: st(&o.provider),
            region: st(&o.region),
            service_name: st(&o.service.name),
        });
    }
    let c = &t.context;
    if c.is_set() {
        if c.custom.is_set() {
            tx.custom = Some(c.custom.0.clone());
        }
        merge_labels(&c.tags.0, &mut out.labels);
        if c.message.is_set() {
            tx.message = Some(map_message(&c.message));
        }
        map_http_context(c, out, false);
    }
    if let Some(d) = t.duration {
        out.event_mut().duration = ms_to_ns(d.0);
    }
    if let Some(id) = &t.id {
        tx.id = id.0.clone();
        out.span_mut().id = id.0.clone();
    }
    if t.marks.is_set() {
        tx.marks = t
            .marks
            .0
            .iter()
            .filter(|(_, m)| !m.0.is_empty())
            .map(|(k, m)| {
                (
                    k.clone(),
                    m.0.iter().map(|(mk, v)| (mk.clone(), v.0)).collect(),
                )
            })
            .collect();
    }
    set(&mut tx.name, &t.name);
    let ev = out.event_mut();
    ev.outcome = match (&t.outcome, t.context.response.status_code) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= 500 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
    set(&mut out.parent_id, &t.parent_id);
    set(&mut tx.result, &t.result);
    tx.sampled = t.sampled.is_none_or(|s| s.0);
    tx.representative_count = match t.sample_rate {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        None => 1.0,
    };
    if let Some(id) = &t.session.id {
        out.session = Some(Session {
            id: id.0.clone(),
            sequence: t.session.sequence.map_or(0, |s| s.0 as u64),
        });
    }
    if t.span_count.dropped.is_some() || t.span_count.started.is_some() {
        tx.span_count = Some(SpanCount {
            dropped: t.span_count.dropped.map(|v| v.0 as u32),
            started: t.span_count.started.map(|v| v.0 as u32),
        });
    }
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(ts) = t.timestamp {
        out.timestamp = ts.0;
    }
    set(&mut out.trace_id, &t.trace_id);
    set(&mut tx.r#type, &t.r#type);
    if t.experience.is_set() {
        let x = &t.experience;
        tx.user_experience = Some(UserExperience {
            cls: x.cls.map_or(-1.0, |v| v.0),
            fid: x.fid.map_or(-1.0, |v| v.0),
            tbt: x.tbt.map_or(-1.0, |v| v.0),
            longtask: if x.longtask.is_set() {
                Some((
                    x.longtask.count.map_or(0, |v| v.0 as u64),
                    x.longtask.sum.map_or(0.0, |v| v.0),
                    x.longtask.max.map_or(0.0, |v| v.0),
                ))
            } else {
                None
            },
        });
    }
    out.transaction = Some(tx);
    if t.otel.is_set() {
        super::otel::translate_transaction(
            &t.otel.attributes.0,
            t.otel.span_kind.as_ref().map(|s| s.0.clone()),
            out,
        );
    }
    if !t.links.is_empty() {
        out.span_mut().links = map_links(&t.links);
    }
    if let Some(tx) = &mut out.transaction {
        if tx.r#type.is_empty() {
            tx.r#type = Cow::Borrowed("unknown");
        }
    }
}

fn map_links<'a>(l: &[SpanLinkIn<'a>]) -> Vec<Link<'a>> {
    l.iter()
        .map(|l| Link {
            span_id: st(&l.span_id),
            trace_id: st(&l.trace_id),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Spans.

json_struct! {
    /// `{"span": {...}}`
    pub struct SpanRoot<'a>: "v2.spanRoot" {
        /// The span.
        span: SpanIn<'a> = "span" / "Span",
    }
}

json_struct! {
    /// A span.
    pub struct SpanIn<'a>: "v2.span" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// OpenTelemetry bridge data.
        otel: Otel<'a> = "otel" / "OTel",
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace_id" / "TraceID",
        /// Action.
        action: Option<JStr<'a>> = "action" / "Action",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Outcome.
        outcome: Option<JStr<'a>> = "outcome" / "Outcome",
        /// Child ids.
        child_ids: JVec<JStr<'a>> = "child_ids" / "ChildIDs",
        /// Parent id.
        parent_id: Option<JStr<'a>> = "parent_id" / "ParentID",
        /// Links.
        links: JVec<SpanLinkIn<'a>> = "links" / "Links",
        /// Stack trace.
        stacktrace: JVec<Frame<'a>> = "stacktrace" / "Stacktrace",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Subtype.
        subtype: Option<JStr<'a>> = "subtype" / "Subtype",
        /// Transaction id.
        transaction_id: Option<JStr<'a>> = "transaction_id" / "TransactionID",
        /// Composite (compressed) span.
        composite: CompositeIn<'a> = "composite" / "Composite",
        /// Context.
        context: SpanContext<'a> = "context" / "Context",
        /// Start offset in milliseconds.
        start: Option<JFloat> = "start" / "Start",
        /// Sample rate.
        sample_rate: Option<JFloat> = "sample_rate" / "SampleRate",
        /// Duration in milliseconds.
        duration: Option<JFloat> = "duration" / "Duration",
        /// Synchronous.
        sync: Option<JBool> = "sync" / "Sync",
    }
}

json_struct! {
    /// `span.composite`
    pub struct CompositeIn<'a>: "v2.spanComposite" {
        /// `exact_match` or `same_kind`.
        compression_strategy: Option<JStr<'a>> = "compression_strategy" / "CompressionStrategy",
        /// Count.
        count: Option<JInt> = "count" / "Count",
        /// Sum in milliseconds.
        sum: Option<JFloat> = "sum" / "Sum",
    }
}

json_struct! {
    /// `span.context`
    pub struct SpanContext<'a>: "v2.spanContext" {
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Service.
        service: ContextService<'a> = "service" / "Service",
        /// Messaging.
        message: ContextMessage<'a> = "message" / "Message",
        /// Database.
        db: SpanDb<'a> = "db" / "Database",
        /// Destination.
        destination: SpanDestination<'a> = "destination" / "Destination",
        /// HTTP.
        http: SpanHttp<'a> = "http" / "HTTP",
    }
}

json_struct! {
    /// `span.context.db`
    pub struct SpanDb<'a>: "v2.spanContextDatabase" {
        /// Instance.
        instance: Option<JStr<'a>> = "instance" / "Instance",
        /// Link.
        link: Option<JStr<'a>> = "link" / "Link",
        /// Statement.
        statement: Option<JStr<'a>> = "statement" / "Statement",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// User.
        user: Option<JStr<'a>> = "user" / "User",
        /// Rows affected.
        rows_affected: Option<JInt> = "rows_affected" / "RowsAffected",
    }
}

json_struct! {
    /// `span.context.destination`
    pub struct SpanDestination<'a>: "v2.spanContextDestination" {
        /// Service.
        service: DestinationServiceIn<'a> = "service" / "Service",
        /// Address.
        address: Option<JStr<'a>> = "address" / "Address",
        /// Port.
        port: Option<JInt> = "port" / "Port",
    }
}

json_struct! {
    /// `span.context.destination.service`
    pub struct DestinationServiceIn<'a>: "v2.spanContextDestinationService" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Resource.
        resource: Option<JStr<'a>> = "resource" / "Resource",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `span.context.http`
    pub struct SpanHttp<'a>: "v2.spanContextHTTP" {
        /// Request.
        request: IdOnly<'a> = "request" / "Request",
        /// Method.
        method: Option<JStr<'a>> = "method" / "Method",
        /// URL.
        url: Option<JStr<'a>> = "url" / "URL",
        /// Response.
        response: SpanHttpResponse<'a> = "response" / "Response",
        /// Deprecated status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
    }
}

json_struct! {
    /// `span.context.http.response`
    pub struct SpanHttpResponse<'a>: "v2.spanContextHTTPResponse" {
        /// Headers.
        headers: JHeaders<'a> = "headers" / "Headers",
        /// Decoded body size.
        decoded_body_size: Option<JInt> = "decoded_body_size" / "DecodedBodySize",
        /// Encoded body size.
        encoded_body_size: Option<JInt> = "encoded_body_size" / "EncodedBodySize",
        /// Status code.
        status_code: Option<JInt> = "status_code" / "StatusCode",
        /// Transfer size.
        transfer_size: Option<JInt> = "transfer_size" / "TransferSize",
    }
}

/// Validates a span as APM Server does.
pub fn validate_span_root(r: &SpanRoot<'_>) -> VResult {
    nested(&r.span, "span", |s| {
        any_of(
            s.start.is_some() || s.timestamp.is_some(),
            "start;timestamp",
        )?;
        nested(&s.otel, "otel", |_| Ok(()))?;
        max_len(&s.id, 1024, "id")?;
        required(&s.id, "id")?;
        max_len(&s.trace_id, 1024, "trace_id")?;
        required(&s.trace_id, "trace_id")?;
        max_len(&s.action, 1024, "action")?;
        max_len(&s.name, 1024, "name")?;
        required(&s.name, "name")?;
        outcome(&s.outcome, "outcome")?;
        if s.child_ids
            .iter()
            .any(|c| c.len() > 1024 && c.runes() > 1024)
        {
            return Err("'child_ids': validation rule 'maxLength(1024)' violated".into());
        }
        max_len(&s.parent_id, 1024, "parent_id")?;
        required(&s.parent_id, "parent_id")?;
        validate_links(&s.links)?;
        validate_frames(&s.stacktrace)?;
        max_len(&s.r#type, 1024, "type")?;
        required(&s.r#type, "type")?;
        max_len(&s.subtype, 1024, "subtype")?;
        max_len(&s.transaction_id, 1024, "transaction_id")?;
        nested(&s.composite, "composite", |c| {
            required(&c.compression_strategy, "compression_strategy")?;
            min_f(c.count.map(|v| v.0 as f64), 2.0, "count", "2")?;
            required(&c.count, "count")?;
            min_f(c.sum.map(|v| v.0), 0.0, "sum", "0")?;
            required(&c.sum, "sum")
        })?;
        nested(&s.context, "context", |c| {
            labels(&c.tags.0, "tags")?;
            nested(&c.service, "service", validate_context_service)?;
            nested(&c.message, "message", validate_message)?;
            nested(&c.db, "db", |d| max_len(&d.link, 1024, "link"))?;
            nested(&c.destination, "destination", |d| {
                nested(&d.service, "service", |s| {
                    max_len(&s.name, 1024, "name")?;
                    max_len(&s.resource, 1024, "resource")?;
                    required(&s.resource, "resource")?;
                    max_len(&s.r#type, 1024, "type")
                })?;
                max_len(&d.address, 1024, "address")
            })?;
            nested(&c.http, "http", |h| {
                nested(&h.request, "request", |_| Ok(()))?;
                max_len(&h.method, 1024, "method")?;
                nested(&h.response, "response", |_| Ok(()))
            })
        })?;
        min_f(s.duration.map(|v| v.0), 0.0, "duration", "0")?;
        required(&s.duration, "duration")
    })?;
    required(&r.span, "span")
}

/// Maps a validated span onto `out` (a clone of the base event).
pub fn map_span<'a>(s: &SpanIn<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Span;
    let mut sp = super::event::Span::default();
    if s.action.is_none() && s.subtype.is_none() {
        split_type(s.r#type.as_ref().map(|t| &t.0), &mut sp);
    } else {
        set(&mut sp.action, &s.action);
        set(&mut sp.subtype, &s.subtype);
        set(&mut sp.r#type, &s.r#type);
    }
    if s.composite.is_set() {
        sp.composite = Some(Composite {
            count: s.composite.count.map_or(0, |c| c.0 as u32),
            sum_ms: s.composite.sum.map_or(0.0, |c| c.0),
            strategy: match s
                .composite
                .compression_strategy
                .as_ref()
                .map(|c| c.as_str())
            {
                Some("exact_match") => "exact_match",
                Some("same_kind") => "same_kind",
                _ => "",
            },
        });
    }
    if !s.child_ids.is_empty() {
        out.child_ids = s.child_ids.iter().map(|c| c.0.clone()).collect();
    }
    let c = &s.context;
    if c.db.is_set() {
        let d = &c.db;
        sp.db = Some(Db {
            instance: st(&d.instance),
            link: st(&d.link),
            rows_affected: d.rows_affected.map(|v| v.0 as u32),
            statement: st(&d.statement),
            r#type: st(&d.r#type),
            user_name: st(&d.user),
        });
    }
    if c.destination.address.is_some() || c.destination.port.is_some() {
        let dest = out.destination.get_or_insert_with(Default::default);
        set(&mut dest.address, &c.destination.address);
        if let Some(p) = c.destination.port {
            dest.port = p.0 as u32;
        }
    }
    if c.destination.service.is_set() {
        let d = &c.destination.service;
        sp.destination_service = Some(DestinationService {
            name: st(&d.name),
            resource: st(&d.resource),
            r#type: st(&d.r#type),
        });
    }
    if c.http.is_set() {
        let h = &c.http;
        if let Some(m) = &h.method {
            out.http_mut()
                .request
                .get_or_insert_with(Default::default)
                .method = m.0.clone();
        }
        if let Some(id) = &h.request.id {
            out.http_mut()
                .request
                .get_or_insert_with(Default::default)
                .id = id.0.clone();
        }
        if h.response.is_set() {
            let r = &h.response;
            out.http_mut().response = Some(HttpResponse {
                decoded_body_size: r.decoded_body_size.map(|v| v.0 as u64),
                encoded_body_size: r.encoded_body_size.map(|v| v.0 as u64),
                headers: if r.headers.set {
                    r.headers.values.clone()
                } else {
                    Vec::new()
                },
                status_code: r.status_code.map_or(0, |v| v.0 as u32),
                transfer_size: r.transfer_size.map(|v| v.0 as u64),
                ..Default::default()
            });
        }
        if let Some(code) = h.status_code {
            out.http_mut()
                .response
                .get_or_insert_with(Default::default)
                .status_code = code.0 as u32;
        }
        if let Some(u) = &h.url {
            out.url.get_or_insert_with(Default::default).original = u.0.clone();
        }
    }
    if c.message.is_set() {
        sp.message = Some(map_message(&c.message));
    }
    if c.service.is_set() {
        map_context_service(&c.service, &mut out.service);
        map_context_agent(&c.service.agent, &mut out.agent);
    }
    if c.service.target.r#type.is_none() {
        if let Some(res) = &c.destination.service.resource {
            out.service.target = Some(target_from_resource(&res.0));
        }
    }
    merge_labels(&c.tags.0, &mut out.labels);
    if let Some(d) = s.duration {
        out.event_mut().duration = ms_to_ns(d.0);
    }
    set(&mut sp.id, &s.id);
    set(&mut sp.name, &s.name);
    let ev = out.event_mut();
    ev.outcome = match (&s.outcome, c.http.status_code) {
        (Some(o), _) => o.0.clone(),
        (None, Some(code)) if code.0 >= 400 => Cow::Borrowed("failure"),
        (None, Some(_)) => Cow::Borrowed("success"),
        (None, None) => Cow::Borrowed("unknown"),
    };
    set(&mut out.parent_id, &s.parent_id);
    sp.representative_count = match s.sample_rate {
        Some(r) if r.0 > 0.0 => 1.0 / r.0,
        Some(_) => 0.0,
        // Agents never send spans of unsampled transactions: assume everything was sampled.
        None => 1.0,
    };
    sp.stacktrace = map_frames(&s.stacktrace);
    sp.sync = s.sync.map(|b| b.0);
    match (s.timestamp, s.start) {
        (Some(t), _) => out.timestamp = t.0,
        (_, Some(start)) => out.timestamp += ms_to_ns_signed(start.0),
        _ => {}
    }
    set(&mut out.trace_id, &s.trace_id);
    if let Some(id) = &s.transaction_id {
        out.transaction = Some(super::event::Transaction {
            id: id.0.clone(),
            ..Default::default()
        });
    }
    out.span = Some(sp);
    if s.otel.is_set() {
        super::otel::translate_span(
            &s.otel.attributes.0,
            s.otel.span_kind.as_ref().map(|k| k.0.clone()),
            out,
        );
    }
    if !s.links.is_empty() {
        out.span_mut().links = map_links(&s.links);
    }
    let sp = out.span_mut();
    if sp.r#type.is_empty() {
        sp.r#type = Cow::Borrowed("unknown");
    }
}

// ---------------------------------------------------------------------------------------------
// Metricsets.

json_struct! {
    /// `{"metricset": {...}}`
    pub struct MetricsetRoot<'a>: "v2.metricsetRoot" {
        /// The metricset.
        metricset: MetricsetIn<'a> = "metricset" / "Metricset",
    }
}

json_struct! {
    /// A metricset.
    pub struct MetricsetIn<'a>: "v2.metricset" {
        /// Timestamp.
        timestamp: Option<JTime> = "timestamp" / "Timestamp",
        /// Samples by metric name.
        samples: JMap<'a, SampleIn<'a>> = "samples" / "Samples",
        /// Span reference (breakdown metrics).
        span: TypeSubtype<'a> = "span" / "Span",
        /// Labels.
        tags: JMap<'a, LabelIn<'a>> = "tags" / "Tags",
        /// Transaction reference (breakdown metrics).
        transaction: NameType<'a> = "transaction" / "Transaction",
        /// Service reference.
        service: NameVersionIn<'a> = "service" / "Service",
        /// Function as a service.
        faas: FaasIn<'a> = "faas" / "FAAS",
    }
}

json_struct! {
    /// One metric sample.
    pub struct SampleIn<'a>: "v2.metricsetSampleValue" {
        /// gauge, counter, histogram or summary.
        r#type: Option<JStr<'a>> = "type" / "Type",
        /// Unit.
        unit: Option<JStr<'a>> = "unit" / "Unit",
        /// Histogram bucket values.
        values: JVec<JFloat> = "values" / "Values",
        /// Histogram bucket counts.
        counts: JVec<JCount> = "counts" / "Counts",
        /// Value.
        value: Option<JFloat> = "value" / "Value",
    }
}

/// A histogram count (Go `uint64`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JCount(pub u64);

impl schemars::JsonSchema for JCount {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Count")
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 0})
    }
}

impl<'de> serde::Deserialize<'de> for JCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = JInt::deserialize(d)?;
        u64::try_from(v.0)
            .map(JCount)
            .map_err(|_| serde::de::Error::custom("ReadUint64: unexpected character,"))
    }
}

json_struct! {
    /// A type and subtype.
    pub struct TypeSubtype<'a>: "v2.metricsetSpanRef" {
        /// Subtype.
        subtype: Option<JStr<'a>> = "subtype" / "Subtype",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// A name and a type.
    pub struct NameType<'a>: "v2.metricsetTransactionRef" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

/// Validates a metricset as APM Server does.
pub fn validate_metricset_root(r: &MetricsetRoot<'_>) -> VResult {
    nested(&r.metricset, "metricset", |m| {
        if m.samples.0.is_empty() {
            return Err("'samples' required".into());
        }
        for (k, v) in &m.samples.0 {
            (|| {
                any_of(v.value.is_some() || !v.values.is_empty(), "value;values")?;
                if v.values.is_empty() && !v.counts.is_empty() {
                    return Err("'values' required when 'counts' is set".to_string());
                }
                if v.counts.is_empty() && !v.values.is_empty() {
                    return Err("'counts' required when 'values' is set".to_string());
                }
                Ok(())
            })()
            .map_err(|e| format!("samples: {e}"))?;
            if !k.is_empty() && k.contains(['*', '"']) {
                return Err(
                    "'samples': validation rule 'patternKeys(patternNoAsteriskQuote)' violated"
                        .into(),
                );
            }
        }
        nested(&m.span, "span", |s| {
            max_len(&s.subtype, 1024, "subtype")?;
            max_len(&s.r#type, 1024, "type")
        })?;
        labels(&m.tags.0, "tags")?;
        nested(&m.transaction, "transaction", |t| {
            max_len(&t.name, 1024, "name")?;
            max_len(&t.r#type, 1024, "type")
        })?;
        nested(&m.service, "service", name_version_max)?;
        nested(&m.faas, "faas", |_| Ok(()))
    })?;
    required(&r.metricset, "metricset")
}

/// Maps a validated metricset onto `out`; `false` when APM Server drops it (a breakdown
/// metricset with no known samples).
pub fn map_metricset<'a>(m: &MetricsetIn<'a>, out: &mut ApmEvent<'a>) -> bool {
    out.kind = Kind::Metric;
    let mut ms = Metricset {
        name: "app",
        samples: Vec::with_capacity(m.samples.0.len()),
    };
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = m.timestamp {
        out.timestamp = t.0;
    }
    for (name, s) in &m.samples.0 {
        let histogram = if !s.counts.is_empty() || !s.values.is_empty() {
            Some((
                s.values.iter().map(|v| v.0).collect(),
                s.counts.iter().map(|c| c.0).collect(),
            ))
        } else {
            None
        };
        ms.samples.push(Sample {
            name: name.clone(),
            r#type: metric_type(s.r#type.as_ref().map(|t| t.as_str())),
            unit: st(&s.unit),
            value: s.value.map_or(0.0, |v| v.0),
            histogram,
        });
    }
    merge_labels(&m.tags.0, &mut out.labels);
    if m.span.is_set() {
        let sp = out.span_mut();
        set(&mut sp.subtype, &m.span.subtype);
        set(&mut sp.r#type, &m.span.r#type);
    }
    let mut ok = true;
    if m.transaction.is_set() {
        let tx = out.transaction_mut();
        set(&mut tx.name, &m.transaction.name);
        set(&mut tx.r#type, &m.transaction.r#type);
        ok = set_internal_metrics(&mut ms, out);
    }
    if let Some(n) = &m.service.name {
        out.service.name = n.0.clone();
        out.service.version = st(&m.service.version);
    }
    map_faas(&m.faas, out);
    out.metricset = Some(ms);
    ok
}

// ---------------------------------------------------------------------------------------------
// Logs.

json_struct! {
    /// `{"log": {...}}`
    pub struct LogRoot<'a>: "v2.logRoot" {
        /// The log.
        log: LogIn<'a> = "log" / "Log",
    }
}

json_struct! {
    /// An application log event; ECS fields may be flat (`"log.level"`) or nested
    /// (`"log": {"level"}`), nested winning.
    pub struct LogIn<'a>: "v2.log" {
        /// Labels.
        labels: JMap<'a, LabelIn<'a>> = "labels" / "Labels",
        /// Timestamp.
        timestamp: Option<JTime> = "@timestamp" / "Timestamp",
        /// Nested `service`.
        service: JObject = "service" / "NestedStruct",
        /// Flat `service.name`.
        service_name: Option<JStr<'a>> = "service.name" / "ServiceName",
        /// Flat `service.version`.
        service_version: Option<JStr<'a>> = "service.version" / "ServiceVersion",
        /// Flat `service.environment`.
        service_environment: Option<JStr<'a>> = "service.environment" / "ServiceEnvironment",
        /// Flat `service.node.name`.
        service_node_name: Option<JStr<'a>> = "service.node.name" / "ServiceNodeName",
        /// Nested `error`.
        error: JObject = "error" / "NestedStruct",
        /// Flat `error.type`.
        error_type: Option<JStr<'a>> = "error.type" / "ErrorType",
        /// Flat `error.message`.
        error_message: Option<JStr<'a>> = "error.message" / "ErrorMessage",
        /// Flat `error.stack_trace`.
        error_stack_trace: Option<JStr<'a>> = "error.stack_trace" / "ErrorStacktrace",
        /// Nested `event`.
        event: JObject = "event" / "NestedStruct",
        /// Flat `event.dataset`.
        event_dataset: Option<JStr<'a>> = "event.dataset" / "EventDataset",
        /// Nested `process`.
        process: JObject = "process" / "NestedStruct",
        /// Flat `process.thread.name`.
        process_thread_name: Option<JStr<'a>> = "process.thread.name" / "ProcessThreadName",
        /// Trace id.
        trace_id: Option<JStr<'a>> = "trace.id" / "TraceID",
        /// Transaction id.
        transaction_id: Option<JStr<'a>> = "transaction.id" / "TransactionID",
        /// Span id.
        span_id: Option<JStr<'a>> = "span.id" / "SpanID",
        /// Message.
        message: Option<JStr<'a>> = "message" / "Message",
        /// Function as a service.
        faas: FaasIn<'a> = "faas" / "FAAS",
        /// Nested `log`.
        log: JObject = "log" / "NestedStruct",
        /// Flat `log.level`.
        log_level: Option<JStr<'a>> = "log.level" / "Level",
        /// Flat `log.logger`.
        log_logger: Option<JStr<'a>> = "log.logger" / "Logger",
        /// Flat `log.origin.file.name`.
        log_origin_file_name: Option<JStr<'a>> = "log.origin.file.name" / "OriginFileName",
        /// Flat `log.origin.function`.
        log_origin_function: Option<JStr<'a>> = "log.origin.function" / "OriginFunction",
        /// Flat `log.origin.file.line`.
        log_origin_file_line: Option<JInt> = "log.origin.file.line" / "OriginFileLine",
    }
}

fn nested_str<'a>(
    obj: &serde_json::Map<String, serde_json::Value>,
    path: &[&str],
) -> Option<JStr<'a>> {
    let mut cur = obj;
    for (i, k) in path.iter().enumerate() {
        let v = cur.get(*k)?;
        if i + 1 == path.len() {
            return v.as_str().map(|s| JStr(Cow::Owned(s.to_owned())));
        }
        cur = v.as_object()?;
    }
    None
}

/// Copies nested ECS fields over the flat ones, as APM Server's `processNestedSource` does;
/// fails like it when `log.origin.file.line` is not an integer.
pub fn process_nested_log(l: &mut LogIn<'_>) -> Result<(), String> {
    if let Some(v) = nested_str(&l.service.0, &["name"]) {
        l.service_name = Some(v);
    }
    if let Some(v) = nested_str(&l.service.0, &["version"]) {
        l.service_version = Some(v);
    }
    if let Some(v) = nested_str(&l.service.0, &["environment"]) {
        l.service_environment = Some(v);
    }
    if let Some(v) = nested_str(&l.service.0, &["node", "name"]) {
        l.service_node_name = Some(v);
    }
    if let Some(v) = nested_str(&l.error.0, &["type"]) {
        l.error_type = Some(v);
    }
    if let Some(v) = nested_str(&l.error.0, &["message"]) {
        l.error_message = Some(v);
    }
    if let Some(v) = nested_str(&l.error.0, &["stack_trace"]) {
        l.error_stack_trace = Some(v);
    }
    if let Some(v) = nested_str(&l.event.0, &["dataset"]) {
        l.event_dataset = Some(v);
    }
    if let Some(v) = nested_str(&l.process.0, &["thread", "name"]) {
        l.process_thread_name = Some(v);
    }
    if let Some(v) = nested_str(&l.log.0, &["level"]) {
        l.log_level = Some(v);
    }
    if let Some(v) = nested_str(&l.log.0, &["logger"]) {
        l.log_logger = Some(v);
    }
    if let Some(v) = nested_str(&l.log.0, &["origin", "file", "name"]) {
        l.log_origin_file_name = Some(v);
    }
    if let Some(v) = nested_str(&l.log.0, &["origin", "function"]) {
        l.log_origin_function = Some(v);
    }
    let line = l
        .log
        .0
        .get("origin")
        .and_then(|o| o.as_object())
        .and_then(|o| o.get("file"))
        .and_then(|f| f.as_object())
        .and_then(|f| f.get("line"));
    if let Some(serde_json::Value::Number(n)) = line {
        match n.as_i64() {
            Some(i) => l.log_origin_file_line = Some(JInt(i)),
            None => return Err(format!("strconv.ParseInt: parsing \"{n}\": invalid syntax")),
        }
    }
    Ok(())
}

/// Validates a log as APM Server does.
pub fn validate_log_root(r: &LogRoot<'_>) -> VResult {
    nested(&r.log, "log", |l| {
        labels(&l.labels.0, "labels")?;
        let service_set = l.service.is_set()
            || l.service_name.is_some()
            || l.service_version.is_some()
            || l.service_environment.is_some()
            || l.service_node_name.is_some();
        if service_set {
            (|| {
                max_len(&l.service_name, 1024, "service.name")?;
                max_len(&l.service_version, 1024, "service.version")?;
                max_len(&l.service_environment, 1024, "service.environment")?;
                max_len(&l.service_node_name, 1024, "service.node.name")
            })()
            .map_err(|e| format!("ecslogservicefields: {e}"))?;
        }
        if l.event.is_set() || l.event_dataset.is_some() {
            max_len(&l.event_dataset, 1024, "event.dataset")
                .map_err(|e| format!("ecslogeventfields: {e}"))?;
        }
        if l.process.is_set() || l.process_thread_name.is_some() {
            max_len(&l.process_thread_name, 1024, "process.thread.name")
                .map_err(|e| format!("ecslogprocessfields: {e}"))?;
        }
        max_len(&l.trace_id, 1024, "trace.id")?;
        max_len(&l.transaction_id, 1024, "transaction.id")?;
        max_len(&l.span_id, 1024, "span.id")?;
        nested(&l.faas, "faas", |_| Ok(()))?;
        if l.log.is_set()
            || l.log_level.is_some()
            || l.log_logger.is_some()
            || l.log_origin_file_name.is_some()
            || l.log_origin_function.is_some()
            || l.log_origin_file_line.is_some()
        {
            (|| {
                max_len(&l.log_level, 1024, "log.level")?;
                max_len(&l.log_logger, 1024, "log.logger")?;
                max_len(&l.log_origin_file_name, 1024, "log.origin.file.name")
            })()
            .map_err(|e| format!("ecsloglogfields: {e}"))?;
        }
        Ok(())
    })?;
    required(&r.log, "log")
}

/// Maps a validated log onto `out` (a clone of the base event).
pub fn map_log<'a>(l: &LogIn<'a>, out: &mut ApmEvent<'a>) {
    out.kind = Kind::Log;
    map_faas(&l.faas, out);
    // An explicit time wins, the epoch included (Go checks time.IsZero, year 1).
    if let Some(t) = l.timestamp {
        out.timestamp = t.0;
    }
    set(&mut out.trace_id, &l.trace_id);
    if let Some(id) = &l.transaction_id {
        out.transaction = Some(super::event::Transaction {
            id: id.0.clone(),
            ..Default::default()
        });
        out.span_mut().id = id.0.clone();
    }
    if let Some(id) = &l.span_id {
        out.span = Some(super::event::Span {
            id: id.0.clone(),
            ..Default::default()
        });
    }
    set(&mut out.message, &l.message);
    if l.log_level.is_some()
        || l.log_logger.is_some()
        || l.log_origin_function.is_some()
        || l.log_origin_file_line.is_some()
        || l.log_origin_file_name.is_some()
    {
        let log = out.log.get_or_insert_with(Default::default);
        set(&mut log.level, &l.log_level);
        set(&mut log.logger, &l.log_logger);
        if let Some(f) = &l.log_origin_function {
            log.origin_function = f.0.clone();
            log.origin_set = true;
        }
        if let Some(line) = l.log_origin_file_line {
            log.origin_file_line = line.0 as u32;
            log.origin_set = true;
        }
        if let Some(f) = &l.log_origin_file_name {
            log.origin_file_name = f.0.clone();
            log.origin_set = true;
        }
    }
    if l.error_type.is_some() || l.error_message.is_some() || l.error_stack_trace.is_some() {
        out.error = Some(super::event::Error {
            message: st(&l.error_message),
            r#type: st(&l.error_type),
            stack_trace: st(&l.error_stack_trace),
            ..Default::default()
        });
    }
    set(&mut out.service.name, &l.service_name);
    set(&mut out.service.version, &l.service_version);
    set(&mut out.service.environment, &l.service_environment);
    set(&mut out.service.node_name, &l.service_node_name);
    if let Some(t) = &l.process_thread_name {
        out.process.get_or_insert_with(Default::default).thread_name = t.0.clone();
    }
    if let Some(d) = &l.event_dataset {
        out.event_mut().dataset = d.0.clone();
    }
    merge_labels(&l.labels.0, &mut out.labels);
    if out.error.is_none() {
        out.event_mut().kind = Cow::Borrowed("event");
    }
}
