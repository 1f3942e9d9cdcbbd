//! Abuse limits kept in the database so every instance shares them: login
//! failures per account and per client address, reset mails per address.
//! Also works out the client address behind trusted proxies.

use std::net::IpAddr;

use gatehouse::RequestMeta;
use ipnet::IpNet;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::db::sql;
use crate::entities::rate_counter;

/// A fixed-window counter's state after a hit.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub count: i64,
    pub locked_until: Option<i64>,
}

/// Counts one event for `key` in a window of `window_ms`, locking the key for
/// `window_ms` once `max` events are reached. One atomic upsert, so
/// concurrent failures on several instances are all counted.
pub async fn hit(
    db: &impl ConnectionTrait,
    key: &str,
    max: i64,
    window_ms: i64,
    now: i64,
) -> Result<Hit, DbErr> {
    let cutoff = now - window_ms;
    let backend = db.get_database_backend();
    let stmt = sql(
        backend,
        "INSERT INTO rate_counters (key, count, window_start, locked_until) \
         VALUES ($1, 1, $2, CASE WHEN 1 >= $4 THEN $5 ELSE NULL END) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN rate_counters.window_start <= $3 THEN 1 ELSE rate_counters.count + 1 END, \
           window_start = CASE WHEN rate_counters.window_start <= $3 THEN $2 ELSE rate_counters.window_start END, \
           locked_until = CASE \
             WHEN (CASE WHEN rate_counters.window_start <= $3 THEN 1 ELSE rate_counters.count + 1 END) >= $4 THEN $5 \
             ELSE rate_counters.locked_until END \
         RETURNING count, locked_until",
        vec![
            key.into(),
            now.into(),
            cutoff.into(),
            max.into(),
            (now + window_ms).into(),
        ],
    );
    let row = db
        .query_one_raw(stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("rate counter upsert returned nothing".into()))?;
    let count: i32 = row.try_get_by_index(0)?;
    let locked_until: Option<i64> = row.try_get_by_index(1)?;
    Ok(Hit {
        count: i64::from(count),
        locked_until,
    })
}

/// Seconds until the latest lock among `keys` ends, if any is locked now.
pub async fn locked_for(
    db: &impl ConnectionTrait,
    keys: &[&str],
    now: i64,
) -> Result<Option<u64>, DbErr> {
    let until: Option<i64> = rate_counter::Entity::find()
        .select_only()
        .column_as(rate_counter::Column::LockedUntil.max(), "until")
        .filter(rate_counter::Column::LockedUntil.gt(now))
        .filter(rate_counter::Column::Key.is_in(keys.iter().copied()))
        .into_tuple::<Option<i64>>()
        .all(db)
        .await?
        .into_iter()
        .next()
        .flatten();
    Ok(until.map(|u| {
        let ms = (u - now).max(0);
        u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
    }))
}

/// Deletes counters whose window started before `window_start` and whose
/// lock, if any, is over at `now`.
pub async fn prune(db: &impl ConnectionTrait, window_start: i64, now: i64) -> Result<(), DbErr> {
    rate_counter::Entity::delete_many()
        .filter(rate_counter::Column::WindowStart.lt(window_start))
        .filter(
            Condition::any()
                .add(rate_counter::Column::LockedUntil.is_null())
                .add(rate_counter::Column::LockedUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets a key (a successful login resets its account counter).
pub async fn clear(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    rate_counter::Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await?;
    Ok(())
}

/// A `GATEHOUSE_TRUSTED_PROXIES` entry that is neither an IP nor a CIDR.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR network")]
pub struct IpNetError(String);

/// Parses one trusted-proxy entry: a CIDR network (`10.0.0.0/8`,
/// `fd00::/8`) or a bare address, which stands for itself alone (a /32 or
/// /128). Blanks around the `/` are tolerated, as they always were.
pub fn parse_net(entry: &str) -> Result<IpNet, IpNetError> {
    let entry = entry.trim();
    let err = || IpNetError(entry.to_owned());
    match entry.split_once('/') {
        Some((addr, prefix)) => format!("{}/{}", addr.trim(), prefix.trim())
            .parse()
            .map_err(|_| err()),
        None => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| err()),
    }
}

/// Parses the comma-separated proxy list.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, IpNetError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_net)
        .collect()
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy,
/// in which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are client-controlled).
pub fn client_ip(meta: &RequestMeta, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(meta.peer?.ip());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in meta.headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            if let Some(ip) = parse_forwarded_ip(part.trim()) {
                chain.push(canonical(ip));
            } else {
                // An unparsable hop: stop trusting anything to its left.
                chain.clear();
            }
        }
    }
    chain
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .or(Some(peer))
}

fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // "1.2.3.4:5678" or "[::1]:5678"
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    fn meta(peer: &str, xff: Option<&str>) -> RequestMeta {
        let mut headers = HeaderMap::new();
        if let Some(x) = xff {
            headers.insert("x-forwarded-for", HeaderValue::from_str(x).expect("header"));
        }
        RequestMeta {
            method: Method::POST,
            headers,
            peer: Some(peer.parse().expect("addr")),
            request_id: "t".into(),
            connection_params: Vec::new(),
            response_headers: Default::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr() {
        let n = parse_net("10.0.0.0/8").expect("cidr");
        assert!(n.contains(&ip("10.1.2.3")));
        assert!(!n.contains(&ip("11.1.2.3")));
        let all = parse_net("0.0.0.0/0").expect("cidr");
        assert!(all.contains(&ip("1.2.3.4")));
        // Host bits in a network are kept, as before; the prefix decides.
        let host_bits = parse_net("10.1.2.3/8").expect("cidr");
        assert!(host_bits.contains(&ip("10.200.0.1")));
        // Blanks around the slash, as accepted before ipnet.
        assert_eq!(parse_net(" 10.0.0.0 / 8 ").expect("cidr"), n);
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("10.0.0.0/").is_err());
        assert!(parse_net("nope").is_err());
        assert!(parse_net("").is_err());
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        let v4 = parse_net("192.0.2.7").expect("ip");
        assert_eq!(v4.prefix_len(), 32);
        assert!(v4.contains(&ip("192.0.2.7")));
        assert!(!v4.contains(&ip("192.0.2.8")));
        let v6 = parse_net("::1").expect("ip");
        assert_eq!(v6.prefix_len(), 128);
        assert!(v6.contains(&ip("::1")));
        assert!(!v6.contains(&ip("::2")));
    }

    #[test]
    fn ipv6_networks() {
        let n = parse_net("2001:db8::/32").expect("cidr");
        assert!(n.contains(&ip("2001:db8:1::5")));
        assert!(!n.contains(&ip("2001:db9::1")));
        // Families never match each other.
        assert!(!n.contains(&ip("10.0.0.1")));
        assert!(!parse_net("0.0.0.0/0").expect("cidr").contains(&ip("::1")));
        assert!(parse_net("2001:db8::/129").is_err());
        assert_eq!(
            parse_net("2001:db8::/129")
                .expect_err("too long")
                .to_string(),
            "\"2001:db8::/129\" is not an IP address or CIDR network"
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let trusted = parse_trusted("10.0.0.0/8").expect("list");
        assert_eq!(
            client_ip(&meta("[::ffff:10.0.0.1]:1", Some("1.1.1.1")), &trusted),
            Some(ip("1.1.1.1"))
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = parse_trusted("127.0.0.1, 10.0.0.0/8").expect("list");
        // Untrusted peer: header ignored.
        assert_eq!(
            client_ip(&meta("8.8.8.8:1", Some("1.1.1.1")), &trusted),
            Some(ip("8.8.8.8"))
        );
        // Trusted peer: right-most untrusted entry.
        assert_eq!(
            client_ip(
                &meta("127.0.0.1:1", Some("6.6.6.6, 1.1.1.1, 10.0.0.2")),
                &trusted
            ),
            Some(ip("1.1.1.1"))
        );
        // Trusted peer, no header: the peer itself.
        assert_eq!(
            client_ip(&meta("127.0.0.1:1", None), &trusted),
            Some(ip("127.0.0.1"))
        );
    }
}
