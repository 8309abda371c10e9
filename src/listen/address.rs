//! What `--listen` may say: `unix:///absolute/path` with optional
//! `mode`, `owner` and `group` (`unix:///run/podstart/podstart.sock?mode=0660&group=podstart`),
//! or `tcp://HOST:PORT`. Pure: names are resolved to ids from the given
//! passwd/group texts, so the parse is testable.
use std::{fmt, path::PathBuf};

/// A socket the API is served on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(UnixListen),
    /// `HOST:PORT` as given (a name is resolved when bound).
    Tcp(String),
}

/// A unix socket and who may open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixListen {
    pub path: PathBuf,
    /// Permission bits; 0660 by default.
    pub mode: u32,
    /// Owner uid; the process's when unset.
    pub owner: Option<u32>,
    /// Group gid; the process's when unset.
    pub group: Option<u32>,
}

/// Socket mode when `mode` is not given: owner and group read and write.
pub const DEFAULT_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error(
        "--listen {0:?}: one of unix:///absolute/path[?mode=0660&owner=USER&group=GROUP] or tcp://HOST:PORT"
    )]
    Scheme(String),
    #[error("--listen {addr:?}: {what}")]
    Invalid { addr: String, what: String },
}

impl ListenAddr {
    /// Parses one `--listen` value; user and group names are looked up
    /// in `passwd` and `group` (the texts of /etc/passwd and /etc/group).
    pub fn parse(s: &str, passwd: &str, group: &str) -> Result<ListenAddr, AddressError> {
        let bad = |what: String| AddressError::Invalid {
            addr: s.to_string(),
            what,
        };
        if let Some(rest) = s.strip_prefix("tcp://") {
            let Some((host, port)) = rest.rsplit_once(':') else {
                return Err(bad("a TCP address needs HOST:PORT".into()));
            };
            if host.is_empty() || host.contains('/') || host.contains('?') {
                return Err(bad(format!("{host:?} is not a host")));
            }
            port.parse::<u16>()
                .map_err(|_| bad(format!("{port:?} is not a port number")))?;
            return Ok(ListenAddr::Tcp(rest.to_string()));
        }
        let Some(rest) = s.strip_prefix("unix://") else {
            return Err(AddressError::Scheme(s.to_string()));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !path.starts_with('/') {
            return Err(bad("the socket path must be absolute".into()));
        }
        let mut unix = UnixListen {
            path: PathBuf::from(path),
            mode: DEFAULT_MODE,
            owner: None,
            group: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("{pair:?}: want key=value")))?;
            match key {
                "mode" => {
                    let mode = u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| bad(format!("mode {value:?}: want octal such as 0660")))?;
                    unix.mode = mode;
                }
                "owner" => {
                    unix.owner = Some(
                        id(value, passwd)
                            .ok_or_else(|| bad(format!("owner {value:?}: no such user")))?,
                    )
                }
                "group" => {
                    unix.group = Some(
                        id(value, group)
                            .ok_or_else(|| bad(format!("group {value:?}: no such group")))?,
                    )
                }
                _ => return Err(bad(format!("unknown option {key:?} (mode, owner, group)"))),
            }
        }
        Ok(ListenAddr::Unix(unix))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(u) => write!(f, "unix://{}", u.path.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A numeric id, or the id of `name` in a passwd/group text
/// (`name:x:id:…`).
fn id(value: &str, table: &str) -> Option<u32> {
    if let Ok(n) = value.parse() {
        return Some(n);
    }
    table.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == value).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\npodstart:x:998:997::/:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:alice\npodstart:x:997:\n";

    fn parse(s: &str) -> Result<ListenAddr, AddressError> {
        ListenAddr::parse(s, PASSWD, GROUP)
    }

    #[test]
    fn unix_sockets_with_their_options() {
        assert_eq!(
            parse("unix:///run/p.sock").unwrap(),
            ListenAddr::Unix(UnixListen {
                path: "/run/p.sock".into(),
                mode: 0o660,
                owner: None,
                group: None
            })
        );
        assert_eq!(
            parse("unix:///run/p.sock?mode=0600&owner=podstart&group=wheel").unwrap(),
            ListenAddr::Unix(UnixListen {
                path: "/run/p.sock".into(),
                mode: 0o600,
                owner: Some(998),
                group: Some(10)
            })
        );
        assert_eq!(
            parse("unix:///s?group=4242&owner=7").unwrap(),
            ListenAddr::Unix(UnixListen {
                path: "/s".into(),
                mode: 0o660,
                owner: Some(7),
                group: Some(4242)
            })
        );
        assert_eq!(parse("unix:///s").unwrap().to_string(), "unix:///s");
    }

    #[test]
    fn tcp_addresses() {
        assert_eq!(
            parse("tcp://0.0.0.0:7443").unwrap(),
            ListenAddr::Tcp("0.0.0.0:7443".into())
        );
        assert_eq!(
            parse("tcp://[::1]:7443").unwrap(),
            ListenAddr::Tcp("[::1]:7443".into())
        );
        assert_eq!(
            parse("tcp://node-1:7443").unwrap().to_string(),
            "tcp://node-1:7443"
        );
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            ("/run/p.sock", "one of unix://"),
            ("http://x:1", "one of unix://"),
            ("unix://run/p.sock", "must be absolute"),
            ("unix:///s?mode=999", "want octal"),
            ("unix:///s?mode=01777", "want octal"),
            ("unix:///s?owner=nobody", "no such user"),
            ("unix:///s?group=nogroup", "no such group"),
            ("unix:///s?colour=red", "unknown option \"colour\""),
            ("unix:///s?mode", "want key=value"),
            ("tcp://7443", "needs HOST:PORT"),
            ("tcp://:7443", "is not a host"),
            ("tcp://h:70000", "not a port number"),
            ("tcp://h:x", "not a port number"),
        ];
        for (addr, want) in cases {
            let err = parse(addr).unwrap_err().to_string();
            assert!(err.contains(want), "{addr}: {err}");
            assert!(err.contains(addr), "{addr}: {err}");
        }
    }
}
