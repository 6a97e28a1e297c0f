//! The Fluvio backend: topics live in a Fluvio cluster (SC + SPUs), reached with the `fluvio`
//! client crate.
//!
//! What it promises, and how (docs/LOG.md has the full comparison with the embedded backend):
//!
//! - **Offsets.** Fluvio's offsets within a partition are dense and start at 0, like Weir's, so
//!   they are used as they are. Reads go through the [`guard::OffsetGuard`]: the 0.50 client can
//!   skip records while catching up (a cut-off batch at the end of a fetch), so every record's
//!   offset is checked to be exactly the next one; a gap re-opens the stream there, a repeat is
//!   dropped. [`Log::read`] therefore never skips or repeats a record.
//! - **Appends** are acknowledged by the partition's leader once committed to its in-sync
//!   replicas (`ReadCommitted`); durability on each SPU is that SPU's storage setting, not
//!   Weir's `fsync`. A produce that fails (e.g. "not the leader for the partition" while an SPU
//!   is loading its partitions after a restart) is retried with backoff from the first record
//!   that was not acknowledged. A failure after the SPU wrote records but before it answered
//!   would leave them twice: so before sending again, the partition is read from where they
//!   could have landed and the records found there (equal, in order: see [`landed`]) count as
//!   written. Operator state and input offsets stay exactly-once because they are committed
//!   together in Weir's own store, not in Fluvio.
//! - **Records** are stored as described in [`codec`]: the key as the Fluvio key, event time and
//!   headers in front of the payload.
//! - **Topic names.** Fluvio takes only `[a-z0-9-]`, at most 63 characters, so Weir names are
//!   escaped (see [`fluvio_topic_name`]): `raw.okta` is `raw-dokta` in Fluvio.
//! - **[`Log::offset_for_time`]** scans the partition from its oldest record (Fluvio has no
//!   index by event time): its cost grows with the partition.
//!
//! Consumer offsets are not kept in Fluvio: Weir keeps them in its store with operator state.

pub mod codec;
pub mod config;
pub mod guard;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use fluvio::config::{TlsConfig, TlsPaths, TlsPolicy};
use fluvio::consumer::ConsumerConfigExtBuilder;
use fluvio::metadata::partition::{PartitionResolution, PartitionSpec};
use fluvio::metadata::spu::SpuSpec;
use fluvio::metadata::topic::{CleanupPolicy, CompressionAlgorithm, SegmentBasedPolicy, TopicSpec, TopicStorageConfig};
use fluvio::{
    Compression, Fluvio, FluvioAdmin, FluvioClusterConfig, Isolation, Offset, RecordKey, TopicProducerConfigBuilder,
    TopicProducerPool,
};
use fluvio_socket::{ClientConfig, MultiplexerSocket, VersionedSerialSocket, Versions};
use fluvio_spu_schema::server::fetch_offset::FetchOffsetsRequest;
use futures_util::StreamExt;
use tokio::sync::Mutex;
use weir_schemas::{Record, StoredRecord};

pub use self::config::{FluvioCompression, FluvioConfig, FluvioTls};
use self::guard::{GuardStats, OffsetGuard, OffsetStream, PersistentGap};
use super::{validate_topic_name, AppendAck, Log, LogError, PartitionOffsets, ReadBatch, TopicInfo};

/// How long connecting to the SC may take before the backend gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read waits for the next record before checking whether the partition has more.
const READ_IDLE: Duration = Duration::from_millis(20);
/// How long a stream may stay silent short of records the partition holds before it is re-opened.
const STALL_REOPEN: Duration = Duration::from_millis(500);
/// How long a read waits for records the partition is known to hold before failing.
const READ_DEADLINE: Duration = Duration::from_secs(60);
/// How long failed produces and offset requests are retried (an SPU restart takes seconds).
const RETRY_FOR: Duration = Duration::from_secs(120);
/// How long a new topic may take to have every partition online.
const TOPIC_ONLINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The Fluvio backend.
#[derive(Clone)]
pub struct FluvioLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: FluvioConfig,
    tls: TlsPolicy,
    client: Fluvio,
    admin: FluvioAdmin,
    /// Partition counts of topics known to exist, by Weir name.
    topics: StdMutex<BTreeMap<String, u32>>,
    /// One producer per partition (each pinned to its partition).
    producers: Mutex<HashMap<(String, u32), Arc<TopicProducerPool>>>,
    /// One open stream per partition, positioned where the last read stopped.
    readers: StdMutex<HashMap<(String, u32), Reader>>,
    /// Leader SPU of each partition, by Fluvio topic name.
    leaders: StdMutex<HashMap<(String, u32), i32>>,
    /// A connection to each SPU, for offset requests.
    spu_connections: Mutex<HashMap<i32, SpuConnection>>,
    /// What the offset guards of [`Log::read`] corrected so far (`opens` is not counted here).
    corrections: StdMutex<GuardStats>,
    /// Per partition, the offset after this client's last acknowledged append: where the next
    /// append's records can land at the earliest (another writer may have appended since).
    append_ends: StdMutex<HashMap<(String, u32), u64>>,
}

/// An open connection to an SPU.
struct SpuConnection {
    socket: Arc<MultiplexerSocket>,
    config: Arc<ClientConfig>,
    versions: Versions,
}

impl SpuConnection {
    fn serial(&self) -> VersionedSerialSocket {
        VersionedSerialSocket::new(self.socket.clone(), self.config.clone(), self.versions.clone())
    }
}

type Guard = OffsetGuard<Record, ReadError>;

/// A partition's reader: its guard, once a read opened one.
type Reader = Arc<Mutex<Option<Guard>>>;

/// An error while reading a stream: the log's, or a gap the guard could not close.
enum ReadError {
    Log(LogError),
    Gap(PersistentGap),
}

impl From<PersistentGap> for ReadError {
    fn from(gap: PersistentGap) -> Self {
        ReadError::Gap(gap)
    }
}

impl From<LogError> for ReadError {
    fn from(error: LogError) -> Self {
        ReadError::Log(error)
    }
}

/// The Fluvio name of a Weir topic: lowercase letters and digits stay, every other character is
/// escaped as `-` and a letter (`-` → `-h`, `.` → `-d`, `_` → `-u`, an upper-case letter → `-c`
/// and the letter in lower case), so the mapping is one-to-one and reversible. Fluvio allows at
/// most 63 characters that start with a letter or digit; a Weir name that does not fit is an
/// error.
pub fn fluvio_topic_name(name: &str) -> Result<String, LogError> {
    validate_topic_name(name)?;
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' => out.push_str("-h"),
            '.' => out.push_str("-d"),
            '_' => out.push_str("-u"),
            'A'..='Z' => {
                out.push_str("-c");
                out.push(c.to_ascii_lowercase());
            }
            _ => unreachable!("validate_topic_name allows only [A-Za-z0-9._-]"),
        }
    }
    let why = if out.starts_with('-') {
        Some("on Fluvio a topic name must start with a letter or a digit")
    } else if out.len() > 63 {
        Some("on Fluvio a topic name is at most 63 characters once `.`, `_`, `-` and capitals are escaped")
    } else {
        None
    };
    match why {
        Some(why) => Err(LogError::InvalidTopicName { name: name.to_string(), why }),
        None => Ok(out),
    }
}

/// The Weir name of a Fluvio topic, if it is one [`fluvio_topic_name`] makes.
pub fn weir_topic_name(fluvio_name: &str) -> Option<String> {
    let mut out = String::with_capacity(fluvio_name.len());
    let mut chars = fluvio_name.chars();
    while let Some(c) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            '-' => match chars.next()? {
                'h' => out.push('-'),
                'd' => out.push('.'),
                'u' => out.push('_'),
                'c' => match chars.next()? {
                    c @ 'a'..='z' => out.push(c.to_ascii_uppercase()),
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        }
    }
    (fluvio_topic_name(&out).ok()? == fluvio_name).then_some(out)
}

fn tls_policy(config: &FluvioConfig) -> TlsPolicy {
    match &config.tls {
        None => TlsPolicy::Disabled,
        Some(tls) => TlsPolicy::Verified(TlsConfig::Files(TlsPaths {
            domain: tls.domain.clone(),
            key: tls.key.clone(),
            cert: tls.cert.clone(),
            ca_cert: tls.ca_cert.clone(),
        })),
    }
}

fn producer_compression(compression: FluvioCompression) -> Compression {
    match compression {
        FluvioCompression::None => Compression::None,
        FluvioCompression::Gzip => Compression::Gzip,
        FluvioCompression::Snappy => Compression::Snappy,
        FluvioCompression::Lz4 => Compression::Lz4,
        FluvioCompression::Zstd => Compression::Zstd,
    }
}

fn topic_compression(compression: FluvioCompression) -> CompressionAlgorithm {
    match compression {
        FluvioCompression::None => CompressionAlgorithm::None,
        FluvioCompression::Gzip => CompressionAlgorithm::Gzip,
        FluvioCompression::Snappy => CompressionAlgorithm::Snappy,
        FluvioCompression::Lz4 => CompressionAlgorithm::Lz4,
        FluvioCompression::Zstd => CompressionAlgorithm::Zstd,
    }
}

fn retry_backoff() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        current_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(2),
        max_elapsed_time: Some(RETRY_FOR),
        ..ExponentialBackoff::default()
    }
}

impl FluvioLog {
    /// Connects to the cluster whose SC listens at `config.endpoint`.
    pub async fn connect(config: &FluvioConfig) -> Result<FluvioLog, LogError> {
        let tls = tls_policy(config);
        let cluster = FluvioClusterConfig::new(config.endpoint.clone()).with_tls(tls.clone());
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, Fluvio::connect_with_config(&cluster)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(remote(&config.endpoint, "connecting", e)),
            Err(_) => {
                return Err(remote(&config.endpoint, "connecting", format!("no answer within {CONNECT_TIMEOUT:?}")))
            }
        };
        let admin = client.admin().await;
        Ok(FluvioLog {
            inner: Arc::new(Inner {
                config: config.clone(),
                tls,
                client,
                admin,
                topics: StdMutex::new(BTreeMap::new()),
                producers: Mutex::new(HashMap::new()),
                readers: StdMutex::new(HashMap::new()),
                leaders: StdMutex::new(HashMap::new()),
                spu_connections: Mutex::new(HashMap::new()),
                corrections: StdMutex::new(GuardStats::default()),
                append_ends: StdMutex::new(HashMap::new()),
            }),
        })
    }

    /// Deletes a topic and everything in it (for benchmarks and tests; Weir itself never does).
    pub async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let name = fluvio_topic_name(topic)?;
        self.inner.topics.lock().expect("topics lock poisoned").remove(topic);
        self.inner.producers.lock().await.retain(|(t, _), _| t != topic);
        self.inner.readers.lock().expect("readers lock poisoned").retain(|(t, _), _| t != topic);
        self.inner
            .admin
            .delete::<TopicSpec>(name.clone())
            .await
            .map_err(|e| self.error(format!("deleting topic {name}"), e))
    }

    /// How many gaps and repeated records the consumer streams had that reads corrected, since
    /// this client connected (the gaps are the 0.50 client's skipped batches).
    pub fn corrections(&self) -> GuardStats {
        *self.inner.corrections.lock().expect("corrections lock poisoned")
    }

    fn endpoint(&self) -> &str {
        &self.inner.config.endpoint
    }

    fn error(&self, context: impl Into<String>, reason: impl std::fmt::Display) -> LogError {
        remote(self.endpoint(), context, reason)
    }

    /// The partition count of a topic, from the cache or the SC.
    async fn partitions_of(&self, topic: &str) -> Result<Option<u32>, LogError> {
        if let Some(&n) = self.inner.topics.lock().expect("topics lock poisoned").get(topic) {
            return Ok(Some(n));
        }
        let name = fluvio_topic_name(topic)?;
        let found = self
            .inner
            .admin
            .list::<TopicSpec, String>(vec![name.clone()])
            .await
            .map_err(|e| self.error(format!("looking up topic {name}"), e))?;
        let partitions = found.into_iter().find(|t| t.name == name).map(|t| t.spec.partitions());
        if let Some(n) = partitions {
            self.inner.topics.lock().expect("topics lock poisoned").insert(topic.to_string(), n);
        }
        Ok(partitions)
    }

    async fn check_partition(&self, topic: &str, partition: u32) -> Result<String, LogError> {
        let partitions = self.partitions_of(topic).await?.ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
        if partition >= partitions {
            return Err(LogError::UnknownPartition { topic: topic.to_string(), partition, partitions });
        }
        fluvio_topic_name(topic)
    }

    /// Waits until every partition of a new topic has a leader online.
    async fn wait_online(&self, name: &str, partitions: u32) -> Result<(), LogError> {
        let started = Instant::now();
        loop {
            let all = self
                .inner
                .admin
                .all::<PartitionSpec>()
                .await
                .map_err(|e| self.error(format!("listing the partitions of {name}"), e))?;
            let online = (0..partitions).all(|p| {
                let key = format!("{name}-{p}");
                all.iter().any(|m| m.name == key && m.status.resolution == PartitionResolution::Online)
            });
            if online {
                return Ok(());
            }
            if started.elapsed() > TOPIC_ONLINE_TIMEOUT {
                return Err(self.error(
                    format!("creating topic {name}"),
                    format!("its partitions were not all online after {TOPIC_ONLINE_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn producer(&self, topic: &str, name: &str, partition: u32) -> Result<Arc<TopicProducerPool>, LogError> {
        let key = (topic.to_string(), partition);
        let mut producers = self.inner.producers.lock().await;
        if let Some(producer) = producers.get(&key) {
            return Ok(producer.clone());
        }
        let config = &self.inner.config;
        let batch_size = config.batch_size as usize;
        let producer_config = TopicProducerConfigBuilder::default()
            .set_specific_partitioner(partition)
            .batch_size(batch_size)
            .max_request_size(batch_size.max(1024 * 1024) * 2)
            .linger(Duration::from_millis(config.linger_ms))
            .compression(producer_compression(config.compression))
            .isolation(Isolation::ReadCommitted)
            .build()
            .map_err(|e| self.error(format!("configuring the producer of {name}/{partition}"), e))?;
        let producer = self
            .inner
            .client
            .topic_producer_with_config(name, producer_config)
            .await
            .map_err(|e| self.error(format!("opening a producer to {name}/{partition}"), e))?;
        let producer = Arc::new(producer);
        producers.insert(key, producer.clone());
        Ok(producer)
    }

    /// Sends records, waits for every acknowledgement, and returns the offsets of those
    /// acknowledged in order up to the first failure, with that failure.
    async fn send(producer: &TopicProducerPool, batch: &[(Option<Vec<u8>>, Vec<u8>)]) -> (Vec<u64>, Option<String>) {
        let mut outputs = Vec::with_capacity(batch.len());
        for (key, value) in batch {
            let key = match key {
                Some(key) => RecordKey::from(key.clone()),
                None => RecordKey::NULL,
            };
            match producer.send(key, value.clone()).await {
                Ok(output) => outputs.push(output),
                Err(e) => {
                    // Still wait for what was queued, so its offsets are known.
                    let (offsets, _) = Self::wait_all(producer, outputs).await;
                    return (offsets, Some(e.to_string()));
                }
            }
        }
        Self::wait_all(producer, outputs).await
    }

    /// The offsets of the records of `pending` (in order, a prefix of it) that the partition
    /// holds from `from` on: written by a produce whose answer was lost.
    async fn landed_since(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        pending: &[Record],
    ) -> Result<Vec<u64>, LogError> {
        let end = self.offsets(topic, partition).await?.end;
        let mut tail = Vec::new();
        let mut next = from;
        while next < end {
            let batch = self.read(topic, partition, next, 10_000).await?;
            if batch.records.is_empty() {
                break;
            }
            next = batch.next_offset;
            tail.extend(batch.records);
        }
        Ok(landed(pending, &tail))
    }

    async fn wait_all(producer: &TopicProducerPool, outputs: Vec<fluvio::ProduceOutput>) -> (Vec<u64>, Option<String>) {
        if let Err(e) = producer.flush().await {
            // Each record's acknowledgement below says whether it was written.
            tracing::debug!(error = %e, "flushing the producer failed");
        }
        let mut offsets = Vec::with_capacity(outputs.len());
        for output in outputs {
            match output.wait().await {
                Ok(metadata) => offsets.push(metadata.offset() as u64),
                Err(e) => return (offsets, Some(e.to_string())),
            }
        }
        (offsets, None)
    }

    /// A connection to an SPU, for offset requests.
    async fn spu_socket(&self, spu: i32) -> Result<VersionedSerialSocket, LogError> {
        let mut connections = self.inner.spu_connections.lock().await;
        if let Some(connection) = connections.get(&spu) {
            if !connection.socket.is_stale() {
                return Ok(connection.serial());
            }
        }
        let spus = self.inner.admin.all::<SpuSpec>().await.map_err(|e| self.error("listing the cluster's SPUs", e))?;
        let spec = spus
            .iter()
            .find(|m| m.spec.id == spu)
            .ok_or_else(|| self.error("finding a partition's leader", format!("SPU {spu} is not registered")))?;
        let connector =
            TryFrom::try_from(self.inner.tls.clone()).map_err(|e: anyhow::Error| self.error("setting up TLS", e))?;
        let mut config = ClientConfig::new(self.endpoint(), connector, false).with_prefix_sni_domain(&spec.name);
        let address = spec.spec.public_endpoint.addr();
        config.set_addr(address.clone());
        let socket =
            config.connect().await.map_err(|e| self.error(format!("connecting to SPU {spu} at {address}"), e))?;
        let (socket, config, versions) = socket.split();
        let connection = SpuConnection { socket: MultiplexerSocket::shared(socket), config, versions };
        let serial = connection.serial();
        connections.insert(spu, connection);
        Ok(serial)
    }

    async fn leader_of(&self, name: &str, partition: u32) -> Result<i32, LogError> {
        let key = (name.to_string(), partition);
        if let Some(&leader) = self.inner.leaders.lock().expect("leaders lock poisoned").get(&key) {
            return Ok(leader);
        }
        let partition_name = format!("{name}-{partition}");
        let found = self
            .inner
            .admin
            .list::<PartitionSpec, String>(vec![partition_name.clone()])
            .await
            .map_err(|e| self.error(format!("looking up partition {partition_name}"), e))?;
        let leader =
            found.into_iter().find(|m| m.name == partition_name).map(|m| m.spec.leader).ok_or_else(|| {
                self.error(format!("looking up partition {partition_name}"), "the SC does not know it")
            })?;
        self.inner.leaders.lock().expect("leaders lock poisoned").insert(key, leader);
        Ok(leader)
    }

    async fn fetch_offsets(&self, name: &str, partition: u32) -> Result<PartitionOffsets, String> {
        let leader = self.leader_of(name, partition).await.map_err(|e| e.to_string())?;
        let socket = self.spu_socket(leader).await.map_err(|e| e.to_string())?;
        let response = socket
            .send_receive(FetchOffsetsRequest::new(name.to_string(), partition))
            .await
            .map_err(|e| format!("asking SPU {leader}: {e}"))?;
        let found = response
            .topics
            .into_iter()
            .filter(|t| t.name == name)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| format!("SPU {leader} did not answer for {name}/{partition}"))?;
        if found.error_code.is_error() {
            return Err(format!("SPU {leader}: {}", found.error_code));
        }
        Ok(PartitionOffsets { start: found.start_offset.max(0) as u64, end: found.last_stable_offset.max(0) as u64 })
    }

    /// Forgets a partition's leader and every SPU connection, so the next request looks both up
    /// again (after an SPU restart or a leader change).
    async fn forget_connections(&self, name: &str, partition: u32) {
        self.inner.leaders.lock().expect("leaders lock poisoned").remove(&(name.to_string(), partition));
        self.inner.spu_connections.lock().await.clear();
    }

    /// Opens a consumer stream at `from`, each record mapped by `map`.
    async fn open_stream<T: Send + 'static>(
        &self,
        name: &str,
        partition: u32,
        from: u64,
        map: fn(&fluvio::consumer::Record) -> Result<T, String>,
    ) -> Result<OffsetStream<T, ReadError>, ReadError> {
        let context = format!("reading {name}/{partition} from offset {from}");
        let offset = Offset::absolute(from as i64).map_err(|e| self.error(context.clone(), e))?;
        let config = ConsumerConfigExtBuilder::default()
            .topic(name.to_string())
            .partition(partition)
            .offset_start(offset)
            .isolation(Isolation::ReadCommitted)
            .build()
            .map_err(|e| self.error(context.clone(), e))?;
        let stream =
            self.inner.client.consumer_with_config(config).await.map_err(|e| self.error(context.clone(), e))?;
        let endpoint = self.endpoint().to_string();
        let stream = stream.map(move |item| match item {
            Ok(record) => {
                let offset = record.offset().max(0) as u64;
                map(&record)
                    .map(|value| (offset, value))
                    .map_err(|why| ReadError::Log(remote(&endpoint, format!("decoding offset {offset}"), why)))
            }
            Err(code) => Err(ReadError::Log(remote(&endpoint, context.clone(), code))),
        });
        Ok(Box::pin(stream))
    }

    fn read_error(&self, name: &str, partition: u32, error: ReadError) -> LogError {
        match error {
            ReadError::Log(e) => e,
            ReadError::Gap(gap) => self.error(
                format!("reading {name}/{partition}"),
                format!(
                    "offset {} never came: the stream gives {} instead, even when re-opened at {}",
                    gap.expected, gap.got, gap.expected
                ),
            ),
        }
    }

    fn reader(&self, topic: &str, partition: u32) -> Reader {
        let mut readers = self.inner.readers.lock().expect("readers lock poisoned");
        readers.entry((topic.to_string(), partition)).or_default().clone()
    }
}

fn decode_record(record: &fluvio::consumer::Record) -> Result<Record, String> {
    codec::decode(record.key(), record.value())
}

fn decode_time(record: &fluvio::consumer::Record) -> Result<i64, String> {
    codec::event_time(record.value())
}

fn remote(endpoint: &str, context: impl Into<String>, reason: impl std::fmt::Display) -> LogError {
    LogError::Remote { endpoint: endpoint.to_string(), context: context.into(), reason: reason.to_string() }
}

#[async_trait]
impl Log for FluvioLog {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        let fluvio_name = fluvio_topic_name(name)?;
        if let Some(existing) = self.partitions_of(name).await? {
            return Ok(TopicInfo { name: name.to_string(), partitions: existing });
        }
        if partitions == 0 {
            return Err(LogError::InvalidTopicName { name: name.into(), why: "a topic needs at least one partition" });
        }
        let config = &self.inner.config;
        let mut spec = TopicSpec::new_computed(partitions, config.replication, None);
        if let Some(ms) = config.retention_ms {
            spec.set_cleanup_policy(CleanupPolicy::Segment(SegmentBasedPolicy {
                time_in_seconds: ms.div_ceil(1000).min(u32::MAX as u64) as u32,
            }));
        }
        if let Some(bytes) = config.retention_bytes {
            spec.set_storage(TopicStorageConfig { segment_size: None, max_partition_size: Some(bytes) });
        }
        spec.set_compression_type(topic_compression(config.compression));
        if let Err(e) = self.inner.admin.create(fluvio_name.clone(), false, spec).await {
            // Another client may have created it meanwhile: then it is there now.
            if self.partitions_of(name).await?.is_none() {
                return Err(self.error(format!("creating topic {fluvio_name}"), e));
            }
        }
        let partitions = self.partitions_of(name).await?.ok_or_else(|| {
            self.error(format!("creating topic {fluvio_name}"), "the SC accepted it but does not list it")
        })?;
        self.wait_online(&fluvio_name, partitions).await?;
        Ok(TopicInfo { name: name.to_string(), partitions })
    }

    async fn topic(&self, name: &str) -> Result<Option<TopicInfo>, LogError> {
        if fluvio_topic_name(name).is_err() {
            return Ok(None);
        }
        Ok(self.partitions_of(name).await?.map(|partitions| TopicInfo { name: name.to_string(), partitions }))
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let all = self.inner.admin.all::<TopicSpec>().await.map_err(|e| self.error("listing topics", e))?;
        let mut topics: Vec<TopicInfo> = all
            .into_iter()
            .filter_map(|t| weir_topic_name(&t.name).map(|name| TopicInfo { name, partitions: t.spec.partitions() }))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<AppendAck, LogError> {
        if records.is_empty() {
            return Err(LogError::TooLarge("an empty batch cannot be appended".into()));
        }
        let name = self.check_partition(topic, partition).await?;
        let batch: Vec<(Option<Vec<u8>>, Vec<u8>)> =
            records.iter().map(|r| (r.key.clone(), codec::encode_value(r))).collect();
        let key = (topic.to_string(), partition);
        let known_end = self.inner.append_ends.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        // Where this batch can land at the earliest, to look for records written without an
        // answer; asked once per partition, then known from the previous append.
        let start = match known_end {
            Some(end) => end,
            None => self.offsets(topic, partition).await?.end,
        };
        let mut offsets: Vec<u64> = Vec::with_capacity(batch.len());
        let mut backoff = retry_backoff();
        // Set after a failed produce: look from there for records that landed unacknowledged.
        let mut look_from: Option<u64> = None;
        loop {
            let failure = match look_from {
                Some(from) => match self.landed_since(topic, partition, from, &records[offsets.len()..]).await {
                    Ok(landed) => {
                        if !landed.is_empty() {
                            tracing::warn!(
                                topic = %name, partition, records = landed.len(),
                                "records of a failed produce were written after all; they are not sent again"
                            );
                        }
                        offsets.extend(landed);
                        look_from = None;
                        if offsets.len() == batch.len() {
                            break;
                        }
                        continue;
                    }
                    Err(e) => e.to_string(),
                },
                None => {
                    let producer = self.producer(topic, &name, partition).await?;
                    let (acked, failure) = Self::send(&producer, &batch[offsets.len()..]).await;
                    offsets.extend(acked);
                    let Some(failure) = failure else { break };
                    look_from = Some(offsets.last().map_or(start, |last| last + 1));
                    failure
                }
            };
            // A producer that failed keeps its error; start the rest on a new one, which also
            // looks the leader up again.
            self.inner.producers.lock().await.remove(&(topic.to_string(), partition));
            let Some(delay) = backoff.next_backoff() else {
                return Err(self.error(
                    format!("appending to {name}/{partition}"),
                    format!(
                        "{failure} (retried for {RETRY_FOR:?}; {} of {} records acknowledged)",
                        offsets.len(),
                        batch.len()
                    ),
                ));
            };
            tracing::warn!(
                topic = %name, partition, error = %failure, acked = offsets.len(), of = batch.len(),
                retry_in_ms = delay.as_millis() as u64, "produce failed; retrying the rest of the batch"
            );
            tokio::time::sleep(delay).await;
        }
        let (base_offset, last_offset) = (offsets[0], offsets[offsets.len() - 1]);
        let ends = &mut self.inner.append_ends.lock().unwrap_or_else(|p| p.into_inner());
        let end = ends.entry(key).or_insert(0);
        *end = (*end).max(last_offset + 1);
        if last_offset - base_offset + 1 != offsets.len() as u64 {
            tracing::warn!(
                topic = %name, partition, base_offset, last_offset, records = offsets.len(),
                "the batch's offsets are not contiguous: a retried produce left records twice, or another writer appended meanwhile"
            );
        }
        Ok(AppendAck { base_offset, last_offset })
    }

    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch, LogError> {
        let name = self.check_partition(topic, partition).await?;
        let empty = ReadBatch { records: Vec::new(), next_offset: from };
        if max_records == 0 {
            return Ok(empty);
        }
        let reader = self.reader(topic, partition);
        let mut slot = reader.lock().await;
        if slot.as_ref().map(Guard::expected) != Some(from) {
            // A new position: check it is held before opening a stream there.
            let offsets = self.offsets(topic, partition).await?;
            if from < offsets.start {
                *slot = None;
                return Err(LogError::OffsetOutOfRange {
                    topic: topic.to_string(),
                    partition,
                    requested: from,
                    start: offsets.start,
                });
            }
            *slot = Some(OffsetGuard::new(from));
            if from >= offsets.end {
                return Ok(empty);
            }
        }
        let guard = slot.as_mut().expect("set above");
        let mut open = |at: u64| self.open_stream(&name, partition, at, decode_record);
        let mut records = Vec::new();
        let started = Instant::now();
        let before = guard.stats();
        let mut idle_since: Option<Instant> = None;
        while records.len() < max_records {
            match guard.next(&mut open, READ_IDLE).await {
                Ok(Some((offset, record))) => {
                    idle_since = None;
                    records.push(StoredRecord { topic: topic.to_string(), partition, offset, record })
                }
                Ok(None) => {
                    // Nothing came for a moment: stop if the partition has nothing more.
                    if guard.expected() >= self.offsets(topic, partition).await?.end {
                        break;
                    }
                    // It has more: a stream that stays silent stalled (a cut-off batch at the
                    // tail leaves no later record to reveal the gap), so start it again there.
                    if idle_since.get_or_insert_with(Instant::now).elapsed() > STALL_REOPEN {
                        guard.reopen();
                        idle_since = None;
                    }
                    if started.elapsed() > READ_DEADLINE {
                        if !records.is_empty() {
                            break;
                        }
                        return Err(self.error(
                            format!("reading {name}/{partition} from offset {}", guard.expected()),
                            format!("the partition holds more records but none came within {READ_DEADLINE:?}"),
                        ));
                    }
                }
                // The records already read are good; the next call resumes after them and
                // meets the error again if it lasts.
                Err(_) if !records.is_empty() => break,
                Err(e) => return Err(self.read_error(&name, partition, e)),
            }
        }
        let after = guard.stats();
        let (gaps, duplicates, stalls) =
            (after.gaps - before.gaps, after.duplicates - before.duplicates, after.stalls - before.stalls);
        if gaps > 0 || duplicates > 0 || stalls > 0 {
            tracing::info!(topic = %name, partition, gaps, duplicates, stalls, "the consumer stream skipped, repeated or stalled; the offset guard corrected it");
            let mut total = self.inner.corrections.lock().expect("corrections lock poisoned");
            total.gaps += gaps;
            total.duplicates += duplicates;
            total.stalls += stalls;
        }
        let next_offset = records.last().map_or(from, |r| r.offset + 1);
        Ok(ReadBatch { records, next_offset })
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        let name = self.check_partition(topic, partition).await?;
        let mut backoff = retry_backoff();
        loop {
            match self.fetch_offsets(&name, partition).await {
                Ok(offsets) => return Ok(offsets),
                Err(why) => {
                    self.forget_connections(&name, partition).await;
                    let Some(delay) = backoff.next_backoff() else {
                        return Err(self.error(format!("fetching the offsets of {name}/{partition}"), why));
                    };
                    tracing::debug!(topic = %name, partition, error = %why, "offsets request failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn offset_for_time(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        let name = self.check_partition(topic, partition).await?;
        let offsets = self.offsets(topic, partition).await?;
        let mut guard: OffsetGuard<i64, ReadError> = OffsetGuard::new(offsets.start);
        let mut open = |at: u64| self.open_stream(&name, partition, at, decode_time);
        let mut last_progress = Instant::now();
        let mut last_reopen = Instant::now();
        while guard.expected() < offsets.end {
            match guard.next(&mut open, READ_IDLE).await {
                Ok(Some((offset, time))) => {
                    if time >= timestamp_ms {
                        return Ok(Some(offset));
                    }
                    last_progress = Instant::now();
                }
                Ok(None) if last_progress.elapsed() > READ_DEADLINE => {
                    return Err(self.error(
                        format!("scanning {name}/{partition} by time"),
                        format!("no record came within {READ_DEADLINE:?} at offset {}", guard.expected()),
                    ))
                }
                Ok(None) => {
                    // Records below `end` exist: a silent stream stalled (see `read`).
                    if last_progress.elapsed() > STALL_REOPEN && last_reopen.elapsed() > STALL_REOPEN {
                        guard.reopen();
                        last_reopen = Instant::now();
                    }
                }
                Err(e) => return Err(self.read_error(&name, partition, e)),
            }
        }
        Ok(None)
    }

    async fn flush(&self) -> Result<(), LogError> {
        // Appends return only once acknowledged, so nothing is pending.
        Ok(())
    }
}

/// Which of `pending` (records a failed produce did not get acknowledged, in order) are in
/// `tail` (the partition's records from where they could have landed): the longest prefix of
/// `pending` found in order, with their offsets. Records of other writers may be interleaved;
/// an equal record is the same record (records carry their `weir-id`).
fn landed(pending: &[Record], tail: &[StoredRecord]) -> Vec<u64> {
    let mut found = Vec::new();
    for stored in tail {
        match pending.get(found.len()) {
            Some(next) if stored.record == *next => found.push(stored.offset),
            Some(_) => {}
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests;
