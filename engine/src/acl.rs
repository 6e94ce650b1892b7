//! ACL checks as ZooKeeper's `ZooKeeperServer.checkACL` and
//! `PrepRequestProcessor.fixupACL`, with the world, auth, digest, ip and
//! super schemes.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::types::{Acl, ErrorCode, Id};

/// `DigestAuthenticationProvider.generateDigest`: `user:base64(sha1(user:pw))`.
pub fn generate_digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The identities a session has proven: its client address (`ip`), digests
/// added with `addauth digest`, and `super` when the super digest matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub ids: Vec<Id>,
}

impl AuthInfo {
    pub fn is_super(&self) -> bool {
        self.ids.iter().any(|i| i.scheme == "super")
    }

    pub fn add(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }
}

/// Outcome of `addauth`: the ids to add, or AuthFailed (which ZooKeeper
/// answers by closing the connection).
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    client_ip: Option<&str>,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(auth).map_err(|_| ErrorCode::AuthFailed)?;
            let digest = generate_digest(text);
            let mut ids = Vec::new();
            if super_digest == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &digest));
            Ok(ids)
        }
        "ip" => match client_ip {
            Some(ip) => Ok(vec![Id::new("ip", ip)]),
            None => Err(ErrorCode::AuthFailed),
        },
        _ => Err(ErrorCode::AuthFailed),
    }
}

/// Parses `addr[/bits]` of an ip ACL into address bytes and a prefix length.
fn parse_ip_acl(expr: &str) -> Option<(Vec<u8>, usize)> {
    let mut parts = expr.splitn(2, '/');
    let addr: IpAddr = parts.next()?.parse().ok()?;
    let bytes = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let bits = match parts.next() {
        None => bytes.len() * 8,
        Some(b) => {
            let bits: i64 = b.parse().ok()?;
            if bits < 0 || bits as usize > bytes.len() * 8 {
                return None;
            }
            bits as usize
        }
    };
    Some((bytes, bits))
}

fn ip_matches(client: &str, acl_expr: &str) -> bool {
    let Some((acl_bytes, bits)) = parse_ip_acl(acl_expr) else {
        return false;
    };
    let Some((client_bytes, _)) = parse_ip_acl(client) else {
        return false;
    };
    if client_bytes.len() != acl_bytes.len() {
        return false;
    }
    for i in 0..bits {
        let mask = 0x80u8 >> (i % 8);
        if (client_bytes[i / 8] & mask) != (acl_bytes[i / 8] & mask) {
            return false;
        }
    }
    true
}

/// Whether an id of `scheme` is well formed (`AuthenticationProvider.isValid`).
fn is_valid(scheme: &str, id: &str) -> bool {
    match scheme {
        "digest" => id.split(':').count() == 2,
        "ip" => parse_ip_acl(id).is_some(),
        "super" => true,
        // ZooKeeper's X509AuthenticationProvider: an X.500 name such as
        // `CN=app,O=example`, matched exactly (the server names TLS clients
        // by their certificate's subject in this form).
        "x509" => is_x500_name(id),
        _ => false,
    }
}

/// Whether every RDN of an RFC 2253 name (commas and plus signs escaped
/// with a backslash inside values) has an `attribute=value` form.
fn is_x500_name(id: &str) -> bool {
    let mut rdn_has_eq = false;
    let mut escaped = false;
    for c in id.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '=' => rdn_has_eq = true,
            ',' | '+' => {
                if !rdn_has_eq {
                    return false;
                }
                rdn_has_eq = false;
            }
            _ => {}
        }
    }
    rdn_has_eq && !escaped
}

/// `ZooKeeperServer.checkACL`: Ok if some ACL entry grants `perm` to one of
/// the session's ids, or the ACL list is empty, or the session is super.
pub fn check(acl: &[Acl], perm: i32, auth: &AuthInfo) -> Result<(), ErrorCode> {
    if auth.is_super() || acl.is_empty() {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for id in &auth.ids {
            if id.scheme != a.id.scheme {
                continue;
            }
            let matched = match id.scheme.as_str() {
                "ip" => ip_matches(&id.id, &a.id.id),
                _ => id.id == a.id.id,
            };
            if matched {
                return Ok(());
            }
        }
    }
    Err(ErrorCode::NoAuth)
}

/// `PrepRequestProcessor.fixupACL`: validates an ACL list from a client and
/// expands the `auth` scheme into the session's authenticated ids.
pub fn fixup(acl: &[Acl], auth: &AuthInfo) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            push(a.clone());
        } else if a.id.scheme == "auth" {
            // Only schemes whose provider "isAuthenticated" take part: ip
            // addresses do not, digests and super do.
            let mut any = false;
            for id in auth.ids.iter().filter(|i| i.scheme != "ip") {
                push(Acl {
                    perms: a.perms,
                    id: id.clone(),
                });
                any = true;
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if is_valid(&a.id.scheme, &a.id.id) {
            push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// getACL for a session without ADMIN: digests are masked as ZooKeeper does.
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", &format!("{user}:x")),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // From ZooKeeper's documentation and tests: super:test.
        assert_eq!(
            generate_digest("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn ip_cidr() {
        assert!(ip_matches("127.0.0.1", "127.0.0.0/8"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("10.0.0.1", "127.0.0.0/8"));
        assert!(parse_ip_acl("1.2.3.4/33").is_none());
        assert!(parse_ip_acl("nonsense").is_none());
    }

    #[test]
    fn check_and_fixup() {
        let digest = Id::new("digest", &generate_digest("u:p"));
        let auth = AuthInfo {
            ids: vec![Id::new("ip", "127.0.0.1"), digest.clone()],
        };
        let acl = vec![Acl {
            perms: perms::READ,
            id: digest.clone(),
        }];
        assert_eq!(check(&acl, perms::READ, &auth), Ok(()));
        assert_eq!(check(&acl, perms::WRITE, &auth), Err(ErrorCode::NoAuth));
        assert_eq!(
            check(&acl, perms::READ, &AuthInfo::default()),
            Err(ErrorCode::NoAuth)
        );
        let fixed = fixup(
            &[Acl {
                perms: perms::ALL,
                id: Id::new("auth", ""),
            }],
            &auth,
        )
        .unwrap();
        assert_eq!(fixed.len(), 1);
        assert_eq!(fixed[0].id, digest);
        assert_eq!(
            fixup(
                &[Acl {
                    perms: perms::ALL,
                    id: Id::new("auth", "")
                }],
                &AuthInfo::default()
            ),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup(&[], &auth), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(
                &[Acl {
                    perms: perms::ALL,
                    id: Id::new("world", "someone")
                }],
                &auth
            ),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn x509_ids_are_x500_names() {
        assert!(is_valid("x509", "CN=app-1,O=corral tests"));
        assert!(is_valid("x509", "CN=app-1,O=Acme\\, Inc.,C=DE"));
        assert!(is_valid("x509", "CN=a+UID=7"));
        assert!(!is_valid("x509", ""));
        assert!(!is_valid("x509", "app-1"));
        assert!(!is_valid("x509", "CN=a,b"));
    }
}
