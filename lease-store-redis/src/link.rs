//! The connection to the Redis primary: one auto-reconnecting
//! [`ConnectionManager`], found either directly from the URL or through
//! Redis Sentinel (`redis+sentinel://…`), in which case it is looked up again
//! whenever the primary stops answering as a primary (failover).

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline,
    RedisError, RedisResult, Script, ScriptInvocation, ServerErrorKind, ToRedisArgs,
};
use tokio::sync::Mutex;

use crate::config::RedisStoreConfig;
use crate::error::{is_unavailable, map_redis};
use lease_core::StoreError;

/// The default Sentinel port.
const SENTINEL_PORT: u16 = 26379;

/// A connection handed to one call, with the generation it belongs to (so a
/// failure only invalidates the connection it happened on).
struct Conn {
    generation: u64,
    manager: ConnectionManager,
}

/// Something [`Link::run`] sends: a command, a pipeline or a script call.
pub(crate) trait Request: Sync {
    /// Sends it on `conn` and converts the reply.
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

impl Request for Cmd {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

impl Request for Pipeline {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

/// A script by SHA (loaded first if the server does not know it).
impl Request for ScriptInvocation<'_> {
    fn send<T: FromRedisValue + Send>(
        &self,
        conn: &mut ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        self.invoke_async(conn)
    }
}

/// Where connections come from.
pub(crate) struct Link {
    current: RwLock<Option<(u64, ConnectionManager)>>,
    /// The last generation handed out.
    generations: AtomicU64,
    sentinel: Option<Mutex<SentinelClient>>,
    /// The client of a direct link (no Sentinel), to reconnect from.
    direct: Option<Client>,
    manager_config: ConnectionManagerConfig,
}

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    pub(crate) sentinels: Vec<(String, u16)>,
    pub(crate) master: String,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) tls: bool,
}

/// Why a Sentinel URL does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid Sentinel URL (expected redis+sentinel://[user:password@]host[:port][,host[:port]…]/master[/db]): {0}"
)]
pub(crate) struct BadSentinelUrl(&'static str);

impl SentinelUrl {
    /// Parses `redis+sentinel://…` (or `rediss+sentinel://…`, TLS to the
    /// Redis nodes); `None` if the URL is not a Sentinel URL at all.
    pub(crate) fn parse(url: &str) -> Option<Result<SentinelUrl, StoreError>> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else {
            (true, url.strip_prefix("rediss+sentinel://")?)
        };
        Some(Self::parse_rest(tls, rest))
    }

    fn parse_rest(tls: bool, rest: &str) -> Result<SentinelUrl, StoreError> {
        let bad = |why| StoreError::Other {
            operation: "parse the Redis URL".to_owned(),
            source: Box::new(BadSentinelUrl(why)),
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no master name"))?;
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').filter(|host| !host.is_empty()) {
            // `[v6]:port`, `[v6]`, `name:port` or `name`.
            let (name, port) = match host.strip_prefix('[') {
                Some(bracketed) => {
                    let (name, after) = bracketed
                        .split_once(']')
                        .ok_or_else(|| bad("an unclosed `[`"))?;
                    (name, after.strip_prefix(':'))
                }
                None => match host.rsplit_once(':') {
                    Some((name, port)) => (name, Some(port)),
                    None => (host, None),
                },
            };
            let port = match port {
                Some(port) => port.parse().map_err(|_| bad("a port is not a number"))?,
                None => SENTINEL_PORT,
            };
            if name.is_empty() {
                return Err(bad("an empty host"));
            }
            sentinels.push((name.to_owned(), port));
        }
        if sentinels.is_empty() {
            return Err(bad("no Sentinel host"));
        }
        let mut parts = path.split('/');
        let master = parts
            .next()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("no master name"))?;
        let db = match parts.next().filter(|db| !db.is_empty()) {
            Some(db) => db
                .parse()
                .map_err(|_| bad("the database is not a number"))?,
            None => 0,
        };
        // Let the redis crate decode the credentials (percent-encoding).
        let (username, password) = match userinfo {
            Some(userinfo) => {
                let info = format!("redis://{userinfo}@localhost/")
                    .into_connection_info()
                    .map_err(|_| bad("the credentials do not parse"))?;
                let settings = info.redis_settings();
                (
                    settings.username().map(str::to_owned),
                    settings.password().map(str::to_owned),
                )
            }
            None => (None, None),
        };
        Ok(SentinelUrl {
            sentinels,
            master: master.to_owned(),
            db,
            username,
            password,
            tls,
        })
    }
}

impl Link {
    /// Prepares the link without any I/O.
    pub(crate) fn new(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(config.reconnect_retries)
            .set_max_delay(Duration::from_secs(1));
        #[cfg(feature = "tls")]
        {
            // rustls needs a crypto provider; ring unless the application
            // installed one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if let Some(parsed) = SentinelUrl::parse(&config.url) {
            let sentinel = sentinel_client(&parsed?, config)
                .map_err(|error| map_redis("set up the Sentinel client", error))?;
            return Ok(Link {
                current: RwLock::new(None),
                generations: AtomicU64::new(0),
                sentinel: Some(Mutex::new(sentinel)),
                direct: None,
                manager_config,
            });
        }
        let client = direct_client(config)?;
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                .map_err(|error| map_redis("create the Redis connection", error))?;
        Ok(Link {
            current: RwLock::new(Some((0, manager))),
            generations: AtomicU64::new(0),
            sentinel: None,
            direct: Some(client),
            manager_config,
        })
    }

    /// Sends `request` on the current connection and converts its reply to
    /// `T`; a failure is mapped (and may drop the connection, see
    /// [`Link::fail`]) as a failure of `operation`.
    pub(crate) async fn run<T: FromRedisValue + Send>(
        &self,
        operation: &str,
        request: &impl Request,
    ) -> Result<T, StoreError> {
        let Conn {
            generation,
            mut manager,
        } = self.get().await?;
        request
            .send(&mut manager)
            .await
            .map_err(|error| self.fail(generation, operation, error))
    }

    /// Runs `script` (by SHA) with `keys` and `args`, each a value or a tuple
    /// in the order the script's header lists them, like [`Link::run`].
    pub(crate) async fn run_script<T: FromRedisValue + Send>(
        &self,
        operation: &str,
        script: &Script,
        keys: impl ToRedisArgs + Send,
        args: impl ToRedisArgs + Send,
    ) -> Result<T, StoreError> {
        self.run(operation, script.key(keys).arg(args)).await
    }

    /// The connection for one call (asking Sentinel for the primary first if
    /// there is none).
    async fn get(&self) -> Result<Conn, StoreError> {
        if let Some((generation, manager)) = self.current() {
            return Ok(Conn {
                generation,
                manager,
            });
        }
        let Some(sentinel) = &self.sentinel else {
            // A direct link whose server stopped being a primary: connect
            // again (re-resolving its name, which a managed service moves to
            // the new primary).
            let client = self.direct.clone().ok_or_else(|| StoreError::Other {
                operation: "connect to Redis".to_owned(),
                source: "no Redis client".into(),
            })?;
            return self.install(client);
        };
        let mut sentinel = sentinel.lock().await;
        // Someone else may have found the primary while we waited.
        if let Some((generation, manager)) = self.current() {
            return Ok(Conn {
                generation,
                manager,
            });
        }
        let client = sentinel
            .async_get_client()
            .await
            .map_err(|error| map_redis("ask Sentinel for the primary", error))?;
        let conn = self.install(client)?;
        tracing::info!(
            generation = conn.generation,
            "connected to the Redis primary named by Sentinel"
        );
        Ok(conn)
    }

    /// Makes a connection manager for `client` the current connection.
    fn install(&self, client: Client) -> Result<Conn, StoreError> {
        let manager = ConnectionManager::new_lazy_with_config(client, self.manager_config.clone())
            .map_err(|error| map_redis("create the Redis connection", error))?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((generation, manager)) = current.as_ref() {
            // Another call got there first.
            return Ok(Conn {
                generation: *generation,
                manager: manager.clone(),
            });
        }
        *current = Some((generation, manager.clone()));
        Ok(Conn {
            generation,
            manager,
        })
    }

    fn current(&self) -> Option<(u64, ConnectionManager)> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Maps an error met on `generation`'s connection while doing
    /// `operation`. With Sentinel, an error that says the primary is gone (or
    /// no longer primary) makes the next call ask Sentinel again; on a direct
    /// link, `READONLY` (the server was demoted) makes the next call connect
    /// again. Other connection failures are left to the connection manager,
    /// which reconnects by itself.
    fn fail(&self, generation: u64, operation: &str, error: RedisError) -> StoreError {
        let demoted = matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        );
        let reconnect = if self.sentinel.is_some() {
            is_unavailable(&error)
        } else {
            demoted
        };
        if reconnect {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if current
                .as_ref()
                .is_some_and(|(live, _)| *live == generation)
            {
                tracing::warn!(generation, error = %error, "Redis primary unavailable or demoted; reconnecting");
                *current = None;
            }
        }
        map_redis(operation, error)
    }
}

fn direct_client(config: &RedisStoreConfig) -> Result<Client, StoreError> {
    #[cfg(feature = "tls")]
    if let Some(pem) = &config.tls_root_certificate {
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        return Client::build_with_tls(config.url.as_str(), certificates)
            .map_err(|error| map_redis("set up TLS for Redis", error));
    }
    Client::open(config.url.as_str()).map_err(|error| map_redis("parse the Redis URL", error))
}

fn sentinel_client(
    url: &SentinelUrl,
    config: &RedisStoreConfig,
) -> Result<SentinelClient, RedisError> {
    let addresses = url
        .sentinels
        .iter()
        .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
    let mut builder =
        SentinelClientBuilder::new(addresses, &url.master, SentinelServerType::Master)?
            .set_client_to_redis_db(url.db);
    if let Some(username) = &url.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &url.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if url.tls {
        builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    }
    #[cfg(feature = "tls")]
    if let Some(pem) = &config.tls_root_certificate {
        builder = builder.set_client_to_redis_certificates(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        });
    }
    #[cfg(not(feature = "tls"))]
    let _ = config;
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinel_urls() {
        let url =
            SentinelUrl::parse("redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:5000/mymaster/3")
                .expect("a sentinel url")
                .expect("parses");
        assert_eq!(
            url,
            SentinelUrl {
                sentinels: vec![
                    ("s1".into(), 26380),
                    ("s2".into(), 26379),
                    ("::1".into(), 5000)
                ],
                master: "mymaster".into(),
                db: 3,
                username: Some("app".into()),
                password: Some("p@ss".into()),
                tls: false,
            }
        );
        let url = SentinelUrl::parse("rediss+sentinel://:secret@10.0.0.1/primary")
            .expect("a sentinel url")
            .expect("parses");
        assert!(url.tls);
        assert_eq!(
            (url.db, url.password.as_deref(), url.username),
            (0, Some("secret"), None)
        );
        assert!(SentinelUrl::parse("redis://host:6379/0").is_none());
        for bad in [
            "redis+sentinel://s1",
            "redis+sentinel:///m",
            "redis+sentinel://s1:x/m",
            "redis+sentinel://s1/m/x",
        ] {
            assert!(matches!(SentinelUrl::parse(bad), Some(Err(_))), "{bad}");
        }
    }
}
